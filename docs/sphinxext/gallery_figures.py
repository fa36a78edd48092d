"""``.. gallery-figure:: <example> <n>``: a figure of a gallery example in a user-guide page.

The user guide shows the pictures a reader would rather look at than read
(sample grids, samples over training, reliability diagrams, robustness
curves, density contours) without drawing them twice: the directive takes the
n-th image sphinx-gallery saved for ``examples/<example>.py``
(``auto_examples/images/sphx_glr_<example>_<nnn>.png``, written before any
page is read) and links the example. A build that did not run the examples
(``make docs-fast``) has no image: the directive then says so and links the
example, without a warning. The content, if any, is the caption.
"""

from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import Directive, directives
from docutils.statemachine import StringList


class GalleryFigure(Directive):
    required_arguments = 2
    has_content = True
    option_spec = {"alt": directives.unchanged, "width": directives.unchanged}

    def run(self):
        example, number = self.arguments[0], int(self.arguments[1])
        env = self.state.document.settings.env
        image = f"auto_examples/images/sphx_glr_{example}_{number:03d}.png"
        link = f":ref:`sphx_glr_auto_examples_{example}.py`"
        caption = [line for line in self.content] or [""]
        if Path(env.srcdir, image).exists():
            env.note_dependency(str(Path(env.srcdir, image)))
            lines = [f".. figure:: /{image}", f"   :alt: {self.options.get('alt', example)}",
                     f"   :width: {self.options.get('width', '100%')}", "   :class: gallery-figure", ""]
            lines += [f"   {line}" for line in caption]
            lines[-1] = lines[-1] + f" (from {link})" if caption != [""] else f"   From {link}."
            lines.append("")
        else:
            text = " ".join(caption).strip()
            lines = [f"*Figure, drawn by the full documentation build* (``make docs``) *from* {link}"
                     + (f": {text}" if text else "."), ""]
        container = nodes.container(classes=["gallery-figure-container"])
        self.state.nested_parse(StringList(lines, source=self.state.document.current_source), self.content_offset,
                                container)
        return [container]


def setup(app):
    app.add_directive("gallery-figure", GalleryFigure)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
