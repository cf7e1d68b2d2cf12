"""The options of a generated world: `WorldConfig`, params.yaml section ``world``."""

from __future__ import annotations

from dataclasses import dataclass

from seed.errors import ConfigError
from seed.eval.mme import MME_SUBTASKS
from seed.params import check_range

SECTION = "world"
NEGATIVE_SAMPLING = ("random", "adversarial")
SEED_QUESTION_POOLS = ("typical", "all", "mixed")
MAX_IMAGES = 1_000_000  # file names carry six digits


@dataclass
class WorldConfig:
    """Options of the generated world (params.yaml section ``world``).

    seed: master random seed. image_size: side of the square RGB images, in pixels.
    n_train / n_seed: images with conversations / with label-free instructions.
    n_pope_images: POPE images (6 questions each per split; as many again, with atypical objects, for
    the counterfactual split); n_mme_images: images per MME subtask;
    n_chair_images: images to caption for CHAIR. All evaluation images are distinct.
    min_objects / max_objects: objects per image (POPE images get at least 3 distinct categories).
    cooccurrence: share of objects drawn from the scene's typical set (the rest uniformly).
    atypical_colour_rate: share of instances with a non-canonical colour.
    small_object_rate: share of objects drawn at the small size.
    occlusion_rate: share of objects (after the first) deliberately placed over an earlier one.
    min_visible: no object is hidden beyond this visible share of its pixels.
    caption_noise_rate: share of training captions that also name an absent typical object.
    caption_rate: share of training conversations with a caption turn.
    train_negative_sampling: absent objects for training "No" questions, "random" (uniform over absent
    categories) or "adversarial" (absent typical objects of the scene).
    hard_negative_rate: under "random" sampling, the share of training "No" questions that are about an
    absent typical object of the scene anyway (0: none; "adversarial" is the same as 1).
    yes_no_form_rate: share of training yes/no questions phrased "... in this image? Please answer
    yes or no." instead of ending with the single-word instruction (instruction-format variety).
    qa_per_image: question turns per training image. seed_questions: questions per SEED image (plus
    a caption request). seed_question_pool: what they ask about, chosen without looking at the image:
    ``typical`` (the scene type's typical objects), ``all`` (any category, uniformly) or ``mixed`` (half
    typical, half any other category). mme_atypical_share: share of MME color images about an atypical colour.
    """

    seed: int = 0
    image_size: int = 48
    n_train: int = 6000
    n_seed: int = 1000
    n_pope_images: int = 500
    n_mme_images: int = 60
    n_chair_images: int = 300
    min_objects: int = 2
    max_objects: int = 5
    cooccurrence: float = 0.85
    atypical_colour_rate: float = 0.12
    small_object_rate: float = 0.25
    occlusion_rate: float = 0.2
    min_visible: float = 0.35
    caption_noise_rate: float = 0.3
    caption_rate: float = 0.9
    train_negative_sampling: str = "random"
    hard_negative_rate: float = 0.0
    qa_per_image: int = 6
    seed_questions: int = 3
    seed_question_pool: str = "typical"
    mme_atypical_share: float = 0.5
    yes_no_form_rate: float = 0.3

    def __post_init__(self) -> None:
        ints = {
            "seed": (0, 2**63 - 1),
            "image_size": (16, 512),
            "n_train": (1, MAX_IMAGES),
            "n_seed": (0, MAX_IMAGES),
            "n_pope_images": (0, MAX_IMAGES),
            "n_mme_images": (0, MAX_IMAGES),
            "n_chair_images": (0, MAX_IMAGES),
            "min_objects": (1, 10),
            "max_objects": (1, 10),
            "qa_per_image": (1, 30),
            "seed_questions": (0, 34),
        }
        for name, (lo, hi) in ints.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(f"{SECTION}.{name} must be an integer, got {value!r}")
            check_range(SECTION, name, value, lo, hi)
        rates = (
            "cooccurrence",
            "atypical_colour_rate",
            "small_object_rate",
            "occlusion_rate",
            "caption_noise_rate",
            "caption_rate",
            "mme_atypical_share",
            "min_visible",
            "yes_no_form_rate",
            "hard_negative_rate",
        )
        for name in rates:
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise ConfigError(f"{SECTION}.{name} must be a number, got {value!r}")
            check_range(SECTION, name, float(value), 0.0, 1.0)
        check_range(SECTION, "min_visible", self.min_visible, 0.0, 1.0, lo_open=True)
        check_range(SECTION, "max_objects", self.max_objects, self.min_objects, 10)
        if self.seed_question_pool not in SEED_QUESTION_POOLS:
            raise ConfigError(
                f"{SECTION}.seed_question_pool = {self.seed_question_pool!r} is not one of "
                f"{', '.join(SEED_QUESTION_POOLS)}"
            )
        if self.train_negative_sampling not in NEGATIVE_SAMPLING:
            raise ConfigError(
                f"{SECTION}.train_negative_sampling = {self.train_negative_sampling!r} is not one "
                f"of {', '.join(NEGATIVE_SAMPLING)}"
            )
        if self.total_images() > MAX_IMAGES:
            raise ConfigError(f"{SECTION}.n_train: {self.total_images()} images in all exceed {MAX_IMAGES}")

    def total_images(self) -> int:
        """Images over all splits."""
        return (
            self.n_train
            + self.n_seed
            + 2 * self.n_pope_images
            + len(MME_SUBTASKS) * self.n_mme_images
            + self.n_chair_images
        )
