"""FactorPortrait for ComfyUI: registers the node pack (V3 schema). Nothing else lives here."""

# The frontend extension (camera preview and keyframe editor, expression curves); ComfyUI
# reads this name from the pack's top-level module.
WEB_DIRECTORY = "./js"


async def comfy_entrypoint():
    # Imported lazily so that ``models/`` stays importable without a ComfyUI host.
    from .nodes import FactorPortraitExtension

    return FactorPortraitExtension()
