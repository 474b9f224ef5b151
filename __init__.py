"""FactorPortrait for ComfyUI: registers the node pack (V3 schema). Nothing else lives here."""

async def comfy_entrypoint():
    # Imported lazily so that ``models/`` stays importable without a ComfyUI host.
    from .nodes import FactorPortraitExtension

    return FactorPortraitExtension()
