"""De-duplication across the corpus: each clip's signatures (`signatures.py`, computed by workers), a band index
that finds the few earlier clips a signature can match (`index.py`), and the rule that keeps the first
occurrence in manifest order (chunk number, then row): a later copy becomes an error row
`duplicate_of:<key>` of the dedup stage (pipelines/dedup.py).
"""
