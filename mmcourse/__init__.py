"""mmcourse: the reference package of a course on multimodal LLMs.

Encode text, images and audio correctly, fuse them, decode back.
"""

__version__ = "0.1.0"
