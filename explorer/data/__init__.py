"""Image data: files and folders, built-in images, patches, synthetic generators, MNIST."""
from .files import ImageFileError, list_images, load_folder, load_image

__all__ = ["ImageFileError", "list_images", "load_folder", "load_image"]
