"""The official CIFAR binary layout (https://www.cs.toronto.edu/~kriz/cifar.html): member names and record format.

A record is the label byte(s) followed by 3072 pixel bytes: the 1024 red values of the 32x32 image in row-major
order, then the 1024 green values, then the 1024 blue ones. CIFAR-10 records have one label byte; CIFAR-100 records
have two, the coarse (superclass) label first and then the fine label.
"""

from __future__ import annotations

from dataclasses import dataclass

IMAGE_SIZE = 32
CHANNELS = 3
IMAGE_BYTES = CHANNELS * IMAGE_SIZE * IMAGE_SIZE  # 3072

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# CIFAR-100: the 20 superclasses and their 5 fine classes each (names as in the official label files).
CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
# The official label files list both in alphabetical order.
CIFAR100_COARSE_CLASSES = tuple(sorted(CIFAR100_SUPERCLASSES))
CIFAR100_CLASSES = tuple(sorted(name for fine in CIFAR100_SUPERCLASSES.values() for name in fine))


@dataclass(frozen=True)
class CifarLayout:
    """Where one dataset's files sit in its archive, and how its records are laid out."""

    dataset: str
    folder: str  # the archive's top-level folder
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    names_file: str  # class names, one per line
    coarse_names_file: str | None  # CIFAR-100 superclass names
    class_names: tuple[str, ...]  # what the official names file holds (used by the synthetic generator)
    official_counts: tuple[tuple[str, int], ...]  # (split, images)
    # sha256 of each official record file, where it is known: how a copy that is not the official tarball (a
    # repack, an extracted folder) is verified. Empty for CIFAR-100: no published per-file hashes are known to us.
    official_sha256: tuple[tuple[str, str], ...] = ()

    @property
    def label_bytes(self) -> int:
        return 2 if self.coarse_names_file else 1

    @property
    def record_bytes(self) -> int:
        return self.label_bytes + IMAGE_BYTES

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def split_files(self, split: str) -> tuple[str, ...]:
        return {"train": self.train_files, "test": self.test_files}[split]

    def member(self, file: str) -> str:
        return f"{self.folder}/{file}"

    def official_member_sha256(self) -> dict[str, str]:
        """Archive member name -> official sha256, for the record files whose hash is known."""
        return {self.member(file): digest for file, digest in self.official_sha256}

    def members(self) -> list[str]:
        """Every file the pipeline needs, as archive member names."""
        files = [*self.train_files, *self.test_files, self.names_file]
        if self.coarse_names_file:
            files.append(self.coarse_names_file)
        return sorted(self.member(file) for file in files)


LAYOUTS = {
    "cifar10": CifarLayout(
        dataset="cifar10",
        folder="cifar-10-batches-bin",
        train_files=tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        test_files=("test_batch.bin",),
        names_file="batches.meta.txt",
        coarse_names_file=None,
        class_names=CIFAR10_CLASSES,
        official_counts=(("train", 50_000), ("test", 10_000)),
        official_sha256=(
            ("data_batch_1.bin", "cee916563c9f80d84e3cc88e17fdc0941787f1244f00a67874d45b261883ada5"),
            ("data_batch_2.bin", "a591ca11fa1708a91ee40f54b3da4784ccd871ecf2137de63f51ada8b3fa57ed"),
            ("data_batch_3.bin", "bbe8596564c0f86427f876058170b84dac6670ddf06d79402899d93ceea26f67"),
            ("data_batch_4.bin", "014e562d6e23c72197cc727519169a60359f5eccd8945ad5a09d710285ff4e48"),
            ("data_batch_5.bin", "755304fc0b379caeae8c14f0dac912fbc7d6cd469eb67a1029a08a39453a9add"),
            ("test_batch.bin", "8e2eb146ae340b09e24670f29cabc6326dba54da8789dab6768acf480273f65b"),
        ),
    ),
    "cifar100": CifarLayout(
        dataset="cifar100",
        folder="cifar-100-binary",
        train_files=("train.bin",),
        test_files=("test.bin",),
        names_file="fine_label_names.txt",
        coarse_names_file="coarse_label_names.txt",
        class_names=CIFAR100_CLASSES,
        official_counts=(("train", 50_000), ("test", 10_000)),
    ),
}
SPLITS = ("train", "test")


def get_layout(dataset: str) -> CifarLayout:
    if dataset not in LAYOUTS:
        raise ValueError(f"unknown dataset {dataset!r}; expected one of {sorted(LAYOUTS)}")
    return LAYOUTS[dataset]
