"""The command line and the composition root: `main` (in `tui.cli.main`) parses the command;
`runtime` wires core, the listener, the simulator and the app together."""
