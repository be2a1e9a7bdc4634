"""The work store: where it lives (`fs.Store`: a folder or an fsspec URL), how a chunk's outputs are packed
(`packs`), and what each stage's output holds (`records`). `mmdata/workdir.py` puts them together."""
