"""One-shot identification against a gallery of known people: its folder layout, its index file, and search.

    gallery, status = load_gallery(DIR, embed, model_identity(model.path), pipeline_key)
    answers = identify(model.score, model.threshold, names, embed(query_paths), gallery, top=K)

`layout` reads the folder (who is who), `index` caches the embeddings in a private `.npz` beside them (never
pickled), `search` scores every query against every photo through the model's head in one vectorised pass;
`embed` reads the photos through the command's FaceReader (a photo with no face is left out, not fatal) and
names the reader's settings (`pipeline_key`) so that changing them rebuilds the index.
"""

from verify_cli.gallery.index import (
    INDEX_MODE,
    INDEX_NAME,
    Embeddings,
    EmbedFn,
    Gallery,
    IndexStatus,
    default_index_path,
    load_gallery,
    model_identity,
)
from verify_cli.gallery.layout import IMAGE_SUFFIXES, Photo, scan
from verify_cli.gallery.search import (
    DEFAULT_TOP,
    Identification,
    ScoreFn,
    identify,
    person_scores,
    score_matrix,
)

__all__ = [
    "DEFAULT_TOP", "IMAGE_SUFFIXES", "INDEX_MODE", "INDEX_NAME", "EmbedFn", "Embeddings", "Gallery", "Identification",
    "IndexStatus", "Photo", "ScoreFn", "default_index_path", "identify", "load_gallery", "model_identity",
    "person_scores", "scan", "score_matrix",
]
