"""Processors of saved checkpoints, also where torchvision is missing.

transformers 5.x gives Qwen2-VL and InternVL processors a video processor, and every video
processor needs torchvision, which is not a dependency here (its wheels for torch 2.13 are CUDA
builds). `load_processor` loads any saved processor folder, through an image-only variant of its
class (`processor_class`) where torchvision is missing.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any


def has_torchvision() -> bool:
    """Whether torchvision imports here (transformers needs it for every video processor)."""
    from transformers.utils import is_torchvision_available

    return is_torchvision_available()


@functools.cache
def processor_class(cls: type) -> type:
    """``cls`` itself where torchvision is available, else ``cls`` without its video processor slot.

    transformers 5.x gives Qwen2-VL and InternVL processors a video processor, every video processor
    needs torchvision, and ``ProcessorMixin`` cannot even type-check an empty video slot without it
    (torchvision is not a dependency here: its wheels for torch 2.13 are CUDA builds). The image path
    does not use it, so without torchvision we return a subclass of the same name whose only
    sub-processors are the image processor and the tokenizer: all processing code is ``cls``'s own,
    ``isinstance(p, cls)`` holds, and ``save_pretrained`` records ``processor_class`` as ``cls``.
    The subclass also loads a saved processor folder: ``processor_class(cls).from_pretrained(path)``.
    """
    if has_torchvision() or "video_processor" not in cls.get_attributes():
        return cls

    def get_attributes(_cls: type) -> list[str]:
        return [name for name in cls.get_attributes() if name != "video_processor"]

    return type(
        cls.__name__,
        (cls,),
        {
            "get_attributes": classmethod(get_attributes),
            "__module__": __name__,
            "__doc__": f"{cls.__name__} for images only (no torchvision here).",
        },
    )


def load_processor(path: str | Path) -> Any:
    """``AutoProcessor.from_pretrained(path)``, or, without torchvision, the image-only variant of its class.

    Without torchvision, ``AutoProcessor`` cannot load any processor that has a video processor
    (Qwen2-VL, InternVL, ...); the class named in the saved ``processor_config.json`` is loaded
    through `processor_class` instead, from the same files.
    """
    import transformers

    path = Path(path)
    name = None
    for file in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        if name is None and (path / file).is_file():
            name = json.loads((path / file).read_text()).get("processor_class")
    if has_torchvision() or name is None or not hasattr(transformers, name):
        return transformers.AutoProcessor.from_pretrained(path)
    return processor_class(getattr(transformers, name)).from_pretrained(path)
