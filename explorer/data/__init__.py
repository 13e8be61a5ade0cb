"""Image data: files and folders, built-in images, patches, synthetic generators, MNIST."""
from .builtin import BUILTIN_IMAGES, builtin_image, builtin_images, square_resize
from .files import ImageFileError, list_images, load_folder, load_image
from .mnist import load_mnist, read_idx_images
from .patches import PatchSampler, dihedral, random_patches
from .synthetic import (
    calpha_image,
    calpha_regions,
    dead_leaves,
    disc_image,
    random_calpha,
    random_disc_params,
    random_discs,
)

__all__ = [
    "BUILTIN_IMAGES",
    "ImageFileError",
    "PatchSampler",
    "builtin_image",
    "builtin_images",
    "calpha_image",
    "calpha_regions",
    "dead_leaves",
    "dihedral",
    "disc_image",
    "list_images",
    "load_folder",
    "load_image",
    "load_mnist",
    "random_calpha",
    "random_disc_params",
    "random_discs",
    "random_patches",
    "read_idx_images",
    "square_resize",
]
