"""The local store: trainings in a TinyDB file, logs in one append-only file per training, a
write-ahead journal in between, one writer at a time. One concern per module:

- records.py     the training records and the database file (load, shape checks, encoding)
- journal.py     the write-ahead journal (append, rotate, replay) that checkpoints fold away
- logs.py        each training's append-only log file
- webhook_ids.py the webhook ids already handled
- lock.py        the writer's lock and the owner file (PID, local API)
- files.py       private modes, whole-or-nothing appends, atomic replacement
- store.py       the Store that puts them together
"""

from core.store.files import check_id, write_error
from core.store.journal import JOURNAL_FILE
from core.store.lock import LOCK_FILE, read_owner
from core.store.logs import LOG_DIR
from core.store.records import DB_FILE
from core.store.store import Store
from core.store.webhook_ids import SEEN_WEBHOOKS_KEPT, WEBHOOK_IDS_FILE

_write_error = write_error  # the name tests used before the split
_check_id = check_id

__all__ = ["DB_FILE", "JOURNAL_FILE", "LOCK_FILE", "LOG_DIR", "SEEN_WEBHOOKS_KEPT", "WEBHOOK_IDS_FILE",
           "Store", "check_id", "read_owner", "write_error"]
