"""Names the study's modules share, in a module that imports nothing: the registry and
the figures read them without importing the claims (scipy) or the stages (torch)."""

CNN, VGG = "cnn", "vgg19"  # the study's model names (config; check_config requires both)


def weights_label(weights_used: list[str | None]) -> str:
    """How the VGG19 artifacts were made, for statements and captions."""
    used = sorted({w or "unknown" for w in weights_used})
    fell_back = [w for w in used if w.startswith("fallback")]
    if fell_back:
        return (f"[VGG19 {fell_back[0]}: ImageNet weights unavailable; a random frozen "
                f"backbone, not the document's model]")
    return f"[VGG19 weights: {', '.join(used)}]"
