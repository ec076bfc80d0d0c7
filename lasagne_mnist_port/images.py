"""An image file of any size or mode as an MNIST example, for --predict."""
import warnings

import numpy as np

from .checkpoints import first_line


class ImageError(ValueError):
    """An image file that cannot be read."""


def load_image(path):
    """Any image file -> a (1, 28, 28) example: grayscale, white digit on black."""
    from PIL import Image
    try:
        with warnings.catch_warnings(), Image.open(path) as image:
            warnings.simplefilter("error", Image.DecompressionBombWarning)  # one line, below
            alpha = image.getchannel("A") if "A" in image.getbands() else None
            if alpha is not None and alpha.getextrema()[0] < 255:
                image = alpha  # ink on a transparent background: the ink is the opacity
            if image.mode == "F" and image.getextrema()[1] <= 1:  # float pixels in [0, 1]
                image = image.point(lambda v: v * 255)
            pixels = np.asarray(image.convert("L").resize((28, 28), Image.LANCZOS),
                                dtype=np.float32)
    except (OSError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise ImageError("{}: not a readable image ({})".format(path, first_line(e)))
    if pixels.max() - pixels.min() < 16:
        raise ImageError("{}: no digit to read (the image is blank: gray levels {:.0f} "
                         "to {:.0f})".format(path, pixels.min(), pixels.max()))
    if pixels.mean() > 127:  # dark ink on light paper: invert, as MNIST is
        pixels = 255 - pixels
    return (pixels / np.float32(256)).reshape(1, 28, 28)
