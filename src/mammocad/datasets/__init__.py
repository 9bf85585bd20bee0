"""Adapters from public datasets and annotation tools to one internal record format."""

from mammocad.datasets.records import AnnotatedImage, LesionAnnotation

__all__ = ["AnnotatedImage", "LesionAnnotation"]
