"""The known trainers: their versions, Cog OpenAPI schemas (TrainingInput) and input checks."""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass
from typing import Any

from core import inputs


def _fixed_version(name: str) -> str:
    # Stable fake version ids: the same for every run and every seed.
    return hashlib.sha256(f"replitrack-simulator:{name}".encode()).hexdigest()


def _prop(kind: str, order: int, description: str, **extra: Any) -> dict[str, Any]:
    title = extra.pop("title", None)
    return {"type": kind, "x-order": order, "description": description, **extra} | (
        {"title": title} if title else {}
    )


FLUX_TRAINING_INPUT: dict[str, Any] = {
    "type": "object",
    "title": "TrainingInput",
    "required": ["input_images"],
    "properties": {
        "input_images": _prop(
            "string", 0,
            "A zip file containing the images that will be used for training. We recommend a "
            "minimum of 10 images. If you include captions, include them as one .txt file per "
            "image, e.g. my-photo.jpg should have a caption file named my-photo.txt.",
            format="uri", title="Input Images",
        ),
        "trigger_word": _prop(
            "string", 1,
            "The trigger word refers to the object, style or concept you are training on. "
            "Pick a string that isn't a real word, like TOK.",
            default="TOK", title="Trigger Word",
        ),
        "autocaption": _prop(
            "boolean", 2, "Automatically caption images using Llava v1.5 13B",
            default=True, title="Autocaption",
        ),
        "autocaption_prefix": _prop(
            "string", 3, "Optional: Text you want to appear at the beginning of all your generated captions",
            title="Autocaption Prefix",
        ),
        "autocaption_suffix": _prop(
            "string", 4, "Optional: Text you want to appear at the end of all your generated captions",
            title="Autocaption Suffix",
        ),
        "steps": _prop(
            "integer", 5, "Number of training steps. Recommended range 500-4000",
            default=1000, minimum=3, maximum=6000, title="Steps",
        ),
        "lora_rank": _prop(
            "integer", 6, "Higher ranks take longer to train but can capture more complex features.",
            default=16, minimum=1, maximum=128, title="Lora Rank",
        ),
        "optimizer": _prop(
            "string", 7, "Optimizer to use for training.", default="adamw8bit", title="Optimizer",
        ),
        "batch_size": _prop(
            "integer", 8, "Batch size. Leave it at 1 unless you know what you're doing.",
            default=1, minimum=1, maximum=4, title="Batch Size",
        ),
        "resolution": _prop(
            "string", 9, "Image resolutions for training, comma separated.",
            default="512,768,1024", title="Resolution",
        ),
        "learning_rate": _prop(
            "number", 10, "Learning rate, if you're new to training you probably don't need to change this.",
            default=0.0004, minimum=0, title="Learning Rate",
        ),
        "caption_dropout_rate": _prop(
            "number", 11, "Advanced setting. Determines how often a caption is ignored.",
            default=0.05, minimum=0, maximum=1, title="Caption Dropout Rate",
        ),
        "cache_latents_to_disk": _prop(
            "boolean", 12, "Use this if you have lots of input images and you hit out of memory errors",
            default=False, title="Cache Latents To Disk",
        ),
        "gradient_checkpointing": _prop(
            "boolean", 13, "Turn on gradient checkpointing; saves memory at the cost of training speed.",
            default=False, title="Gradient Checkpointing",
        ),
        "hf_repo_id": _prop(
            "string", 14, "Hugging Face repository ID to upload the trained LoRA to, e.g. lucataco/flux-dev-lora.",
            title="Hf Repo Id",
        ),
        "hf_token": _prop(
            "string", 15, "Hugging Face token, if you'd like to upload the trained LoRA to Hugging Face.",
            format="password", title="Hf Token", **{"x-cog-secret": True},
        ),
        # Weights & Biases (replicate/flux-fine-tuner train.py): with a key, the trainer samples
        # and saves every N steps in the middle of training.
        "wandb_api_key": _prop(
            "string", 16, "Weights and Biases API key, if you'd like to log training progress to W&B.",
            format="password", title="Wandb Api Key", **{"x-cog-secret": True},
        ),
        "wandb_project": _prop("string", 17, "Weights and Biases project name.", default="flux_train_replicate", title="Wandb Project"),
        "wandb_sample_interval": _prop(
            "integer", 18, "Step interval for sampling output images that are logged to W&B.",
            default=100, minimum=1, title="Wandb Sample Interval",
        ),
        "wandb_sample_prompts": _prop(
            "string", 19, "Newline-separated list of prompts to use when logging samples to W&B.",
            title="Wandb Sample Prompts",
        ),
        "wandb_save_interval": _prop(
            "integer", 20, "Step interval for saving intermediate LoRA weights to W&B.",
            default=100, minimum=1, title="Wandb Save Interval",
        ),
    },
}

SDXL_TRAINING_INPUT: dict[str, Any] = {
    "type": "object",
    "title": "TrainingInput",
    "required": ["input_images"],
    "properties": {
        "input_images": _prop(
            "string", 0,
            "A .zip or .tar file containing the image files that will be used for fine-tuning",
            format="uri", title="Input Images",
        ),
        "seed": _prop("integer", 1, "Random seed for reproducible training. Leave empty to use a random seed", title="Seed"),
        "resolution": _prop(
            "integer", 2, "Square pixel resolution which your images will be resized to for training",
            default=768, minimum=256, maximum=2048, title="Resolution",
        ),
        "train_batch_size": _prop(
            "integer", 3, "Batch size (per device) for training", default=4, minimum=1, maximum=16,
            title="Train Batch Size",
        ),
        "num_train_epochs": _prop(
            "integer", 4, "Number of epochs to loop through your training dataset",
            default=4000, minimum=1, title="Num Train Epochs",
        ),
        "max_train_steps": _prop(
            "integer", 5, "Number of individual training steps. Takes precedence over num_train_epochs",
            default=1000, minimum=1, maximum=10000, title="Max Train Steps",
        ),
        "is_lora": _prop(
            "boolean", 6, "Whether to use LoRA training. If set to False, will use Full fine tuning",
            default=True, title="Is Lora",
        ),
        "unet_learning_rate": _prop("number", 7, "Learning rate for the U-Net.", default=1e-06, minimum=0, title="Unet Learning Rate"),
        "ti_lr": _prop("number", 8, "Scaling of learning rate for training textual inversion embeddings.", default=0.0003, minimum=0, title="Ti Lr"),
        "lora_lr": _prop("number", 9, "Scaling of learning rate for training LoRA embeddings.", default=0.0001, minimum=0, title="Lora Lr"),
        "lora_rank": _prop("integer", 10, "Rank of LoRA embeddings.", default=32, minimum=1, maximum=128, title="Lora Rank"),
        "lr_scheduler": _prop(
            "string", 11, "Learning rate scheduler to use for training", default="constant",
            enum=["constant", "linear"], title="Lr Scheduler",
        ),
        "lr_warmup_steps": _prop("integer", 12, "Number of warmup steps for lr schedulers with warmups.", default=100, minimum=0, title="Lr Warmup Steps"),
        "token_string": _prop(
            "string", 13, "A unique string that will be trained to refer to the concept in the input images.",
            default="TOK", title="Token String",
        ),
        "caption_prefix": _prop(
            "string", 14, "Text which will be used as prefix during automatic captioning.",
            default="a photo of TOK, ", title="Caption Prefix",
        ),
        "mask_target_prompts": _prop(
            "string", 15, "Prompt that describes part of the image that you will find important.",
            title="Mask Target Prompts",
        ),
        "crop_based_on_salience": _prop("boolean", 16, "If you want to crop the image to target_size based on the important parts of the image.", default=True, title="Crop Based On Salience"),
        "use_face_detection_instead": _prop("boolean", 17, "If you want to use face detection instead of CLIPSeg for masking.", default=False, title="Use Face Detection Instead"),
        "clipseg_temperature": _prop("number", 18, "How blurry you want the CLIPSeg mask to be.", default=1.0, minimum=0, title="Clipseg Temperature"),
        "verbose": _prop("boolean", 19, "verbose output", default=True, title="Verbose"),
        "checkpointing_steps": _prop("integer", 20, "Number of steps between saving checkpoints.", default=999999, minimum=1, title="Checkpointing Steps"),
    },
}

LLAMA_TRAINING_INPUT: dict[str, Any] = {
    "type": "object",
    "title": "TrainingInput",
    "required": ["train_data"],
    "properties": {
        "train_data": _prop(
            "string", 0, "URL to a file of training data where each row is a JSON record in the format "
            "{'text': ...} or {'prompt': ..., 'completion': ...}. Must be JSONL.",
            format="uri", title="Train Data",
        ),
        "num_train_epochs": _prop("integer", 1, "Number of epochs (iterations over the entire training dataset) to train for.", default=1, minimum=1, title="Num Train Epochs"),
        "train_batch_size": _prop("integer", 2, "Global batch size. This specifies the batch size that will be used to calculate gradients.", default=4, minimum=1, title="Train Batch Size"),
        "gradient_accumulation_steps": _prop("integer", 3, "Number of training steps (each of train_batch_size) to update gradients for before performing a backward pass.", default=1, minimum=1, title="Gradient Accumulation Steps"),
        "learning_rate": _prop("number", 4, "Learning rate, for learning!", default=0.0001, minimum=0, title="Learning Rate"),
        "warmup_ratio": _prop("number", 5, "Percentage of steps for a linear learning rate warmup", default=0.03, minimum=0, maximum=0.5, title="Warmup Ratio"),
        "max_steps": _prop("integer", 6, "Number of steps to run training for, supersedes num_train_epochs", default=-1, title="Max Steps"),
        "lora_rank": _prop("integer", 7, "Rank of the lora matrices", default=8, minimum=1, title="Lora Rank"),
        "lora_alpha": _prop("integer", 8, "Alpha parameter for scaling lora weights; weights are scaled by alpha/rank", default=16, minimum=1, title="Lora Alpha"),
        "lora_dropout": _prop("number", 9, "Dropout for lora training", default=0.05, minimum=0, maximum=1, title="Lora Dropout"),
        "peft_method": _prop("string", 10, "Training method to use. Currently supports 'lora' and 'qlora'.", default="lora", enum=["lora", "qlora"], title="Peft Method"),
        "seed": _prop("integer", 11, "Random seed to use for training", default=42, title="Seed"),
        "run_validation": _prop("boolean", 12, "Whether to run validation during training.", default=True, title="Run Validation"),
    },
}

# replicate/qwen-image-lora-trainer@09386ee train.py: train()'s inputs, as Cog publishes them.
QWEN_TRAINING_INPUT: dict[str, Any] = {
    "type": "object",
    "title": "TrainingInput",
    "required": ["dataset"],
    "properties": {
        "dataset": _prop(
            "string", 0, "ZIP file with training images and optional .txt captions", format="uri", title="Dataset",
        ),
        "steps": _prop("integer", 1, "Training steps", default=1000, minimum=100, maximum=6000, title="Steps"),
        "learning_rate": _prop(
            "number", 2, "Learning rate", default=0.0002, minimum=1e-05, maximum=0.001, title="Learning Rate",
        ),
        "lora_rank": _prop("integer", 3, "LoRA rank", default=64, minimum=8, maximum=128, title="Lora Rank"),
        "default_caption": _prop(
            "string", 4,
            "Caption for images without matching .txt files. CRITICAL: Qwen is extremely sensitive to prompting "
            "and differs from other image models. Do NOT use abstract tokens like 'TOK', 'sks', or meaningless "
            "identifiers. Instead, use descriptive, familiar words that closely match your actual images (e.g., "
            "'person', 'man', 'woman', 'dog', 'cat', 'building', 'car'). Every token carries meaning - the model "
            "learns by overriding specific descriptive concepts rather than learning new tokens. Be precise and "
            "descriptive about what's actually in your images. The model excels at composition and will follow "
            "detailed instructions exactly.",
            default="A photo of a person named <>", title="Default Caption",
        ),
        "batch_size": _prop("integer", 5, "Batch size", default=1, enum=[1, 2, 4], title="Batch Size"),
        "optimizer": _prop(
            "string", 6, "Optimizer", default="adamw", enum=["adamw8bit", "adamw", "adam8bit", "prodigy"],
            title="Optimizer",
        ),
        "seed": _prop("integer", 7, "Random seed for reproducible results (leave blank for random)", title="Seed"),
    },
}

TRAINING_OUTPUT: dict[str, Any] = {
    "type": "object",
    "title": "TrainingOutput",
    "required": ["weights"],
    "properties": {"weights": {"type": "string", "title": "Weights", "format": "uri"}},
}

IMAGE_PREDICT_INPUT: dict[str, Any] = {
    "type": "object",
    "title": "Input",
    "required": ["prompt"],
    "properties": {
        "prompt": _prop("string", 0, "Prompt for generated image. Include the trigger word.", title="Prompt"),
        "lora_scale": _prop("number", 1, "Determines how strongly the main LoRA should be applied.", default=1, minimum=-1, maximum=3, title="Lora Scale"),
        "num_outputs": _prop("integer", 2, "Number of outputs to generate", default=1, minimum=1, maximum=4, title="Num Outputs"),
        "num_inference_steps": _prop("integer", 3, "Number of denoising steps.", default=28, minimum=1, maximum=50, title="Num Inference Steps"),
        "seed": _prop("integer", 4, "Random seed. Set for reproducible generation", title="Seed"),
    },
}

TEXT_PREDICT_INPUT: dict[str, Any] = {
    "type": "object",
    "title": "Input",
    "required": ["prompt"],
    "properties": {
        "prompt": _prop("string", 0, "Prompt to send to the model.", title="Prompt"),
        "max_new_tokens": _prop("integer", 1, "Maximum number of tokens to generate.", default=128, minimum=1, title="Max New Tokens"),
        "temperature": _prop("number", 2, "Adjusts randomness of outputs.", default=0.75, minimum=0.01, maximum=5, title="Temperature"),
    },
}


@dataclass(frozen=True)
class Trainer:
    """A trainer model on the simulated Replicate (an `owner/name` with one version)."""

    name: str  # owner/name
    version: str  # 64 hex
    version_created_at: str
    cog_version: str
    description: str
    training_input: dict[str, Any]
    predict_input: dict[str, Any]  # the Input of the versions its trainings create
    script: str  # default script name in scripts.SCRIPTS
    run_count: int

    @property
    def owner(self) -> str:
        return self.name.split("/", 1)[0]

    def openapi_schema(self) -> dict[str, Any]:
        return cog_openapi_schema(self.predict_input, self.training_input)


def _official(
    name: str, created: str, cog: str, description: str, training_input: dict[str, Any],
    predict_input: dict[str, Any], script: str, run_count: int,
) -> Trainer:
    return Trainer(name, _fixed_version(name), created, cog, description, training_input, predict_input, script, run_count)


TRAINERS: dict[str, Trainer] = {
    trainer.name: trainer
    for trainer in (
        _official("ostris/flux-dev-lora-trainer", "2024-09-16T18:27:21.538743Z", "0.9.23",
                  "Fine-tune FLUX.1-dev using ai-toolkit", FLUX_TRAINING_INPUT, IMAGE_PREDICT_INPUT, "flux", 1_412_733),
        _official("stability-ai/sdxl", "2023-09-21T16:02:43.129786553Z", "0.8.6",
                  "A text-to-image generative AI model that creates beautiful images", SDXL_TRAINING_INPUT,
                  IMAGE_PREDICT_INPUT, "sdxl", 80_114_519),
        _official("meta/llama-2-7b", "2023-09-19T22:46:09.372938Z", "0.8.1",
                  "Base version of Llama 2 7B, a 7 billion parameter language model", LLAMA_TRAINING_INPUT,
                  TEXT_PREDICT_INPUT, "llama", 1_337_862),
        # replicate/qwen-image-lora-trainer@09386ee (2025-08-20), on the Cog of that day (raw output)
        _official("replicate/qwen-image-lora-trainer", "2025-08-20T15:02:47.318422Z", "0.16.4",
                  "Fine-tune Qwen-Image with LoRA using ai-toolkit", QWEN_TRAINING_INPUT, IMAGE_PREDICT_INPUT,
                  "qwen", 48_306),
    )
}


def cog_openapi_schema(predict_input: dict[str, Any], training_input: dict[str, Any] | None) -> dict[str, Any]:
    """The `openapi_schema` Cog publishes for a version: Input/Output and, for trainers, TrainingInput."""
    schemas: dict[str, Any] = {
        "Input": copy.deepcopy(predict_input),
        "Output": {"type": "array", "items": {"type": "string", "format": "uri"}, "title": "Output"}
        if predict_input is IMAGE_PREDICT_INPUT
        else {"type": "array", "items": {"type": "string"}, "title": "Output", "x-cog-array-type": "iterator"},
        "Status": {"enum": ["starting", "processing", "succeeded", "canceled", "failed"], "type": "string", "title": "Status"},
    }
    paths: dict[str, Any] = {"/predictions": {"post": {"summary": "Predict", "operationId": "predict_predictions_post"}}}
    if training_input is not None:
        schemas["TrainingInput"] = copy.deepcopy(training_input)
        schemas["TrainingOutput"] = copy.deepcopy(TRAINING_OUTPUT)
        paths["/trainings"] = {"post": {"summary": "Train", "operationId": "train_trainings_post"}}
    return {
        "openapi": "3.0.2",
        "info": {"title": "Cog", "version": "0.1.0"},
        "paths": paths,
        "components": {"schemas": schemas},
    }


# ---- input validation (what Cog answers 422 for) -------------------------------------------------

@dataclass(frozen=True)
class InvalidField:
    type: str
    field: str
    description: str

    def as_json(self) -> dict[str, str]:
        return {"type": self.type, "field": self.field, "description": self.description}


def validate_input(schema: dict[str, Any], value: Any) -> list[InvalidField]:
    """Check a training input against a TrainingInput schema like Cog does; [] when it passes.

    The check is core's (the one every front uses); the answer is worded as Cog words it. Unknown
    keys are ignored (Cog drops them); a None value means "use the default".
    """
    if not isinstance(value, dict):
        return [InvalidField("type", "input", "input must be an object")]
    return [_cog_field(problem) for problem in inputs.problems(schema, value, unknown_allowed=True)]


def _cog_field(problem: inputs.InputProblem) -> InvalidField:
    field = f"input.{problem.name}"
    if problem.rule == "required":
        return InvalidField("required", "input", f"{problem.name} is required")
    if problem.rule == "type":
        return InvalidField("type", field, f"Invalid type. Expected: {problem.expected}, given: {_json_type(problem.given)}")
    if problem.rule == "enum":
        choices = ", ".join(repr(choice) for choice in problem.expected)
        return InvalidField("enum", field, f"{problem.name} must be one of the following: {choices}")
    if problem.rule == "minimum":
        return InvalidField("greater_than_equal", field, f"Must be greater than or equal to {problem.expected}")
    if problem.rule == "maximum":
        return InvalidField("less_than_equal", field, f"Must be less than or equal to {problem.expected}")
    if problem.rule == "format":
        return InvalidField("format", field, f"Does not match format {problem.expected!r}")
    return InvalidField(problem.rule, field, problem.message)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def input_value(trainer: Trainer, given: dict[str, Any], name: str) -> Any:
    """The effective value of an input: what was given, else the schema's default."""
    value = given.get(name)
    if value is None:
        return trainer.training_input["properties"].get(name, {}).get("default")
    return value
