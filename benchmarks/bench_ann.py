"""ANN parity and speed: exact flat vs HNSW vs IVF inner-product search on item embeddings.

    python benchmarks/bench_ann.py                      # 100k items x 64 dims, 1000 queries
    python benchmarks/bench_ann.py --items 20000 --ef-search 128 --nprobe 32
    python benchmarks/bench_ann.py --data /path/to/data   # + Amazon Beauty item factors

The embeddings are synthetic but shaped like trained two-tower item vectors: unit vectors around
``--clusters`` random centres (Zipf-sized clusters, within-cluster noise ``--spread``; the default
1.0 puts a query's nearest item at cosine ~0.7 and its 100th at ~0.5), queries drawn the same
way. Looser clusters are harder for both ANN kinds: with ``--spread 1.5`` the defaults reached
only 0.946 (HNSW) and 0.908 (IVF) recall@100 at 100k items, so such data needs a larger
``--ef-search`` / ``--nprobe`` (measure it here before changing the defaults).

With Amazon Beauty under ``--data`` (default ``../shared/data``) the same table is also measured
on real item vectors: the 64 leading singular vectors of Beauty's user x item interaction
matrix (items scaled by the singular values, unit-normalised), queried by 1000 users' factors.
Missing data is reported as skipped, never replaced.

For each index kind of :mod:`training.index` (documented defaults unless overridden) the table
reports build seconds, queries per second (one batched search call, FAISS' own threads) and
recall@k against the exact top-k of the flat index, then one JSON line of the figures. Timings
depend on machine load: the load average is printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

from training.index import DEFAULT_EF_SEARCH, DEFAULT_NPROBE, ivf_nlist, make_index

REPO_ROOT = Path(__file__).resolve().parent.parent


def clustered_unit_vectors(n: int, dim: int, clusters: int, spread: float,
                           seed: int) -> np.ndarray:
    """``[n, dim]`` float32 unit vectors around Zipf-sized random centres."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = 1.0 / np.arange(1, clusters + 1) ** 0.8
    label = rng.choice(clusters, n, p=weights / weights.sum())
    x = centres[label] + spread * rng.normal(size=(n, dim)) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def recall_at_k(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact top-k that the approximate top-k contains."""
    return float(np.mean([len(set(a[a >= 0]) & set(b)) / len(b)
                          for a, b in zip(found, exact, strict=True)]))


def measure(kind: str, items: np.ndarray, queries: np.ndarray, k: int, exact: np.ndarray | None,
            **params: int) -> tuple[dict[str, float], np.ndarray]:
    """Build ``kind`` on ``items``, search ``queries``; figures and the found rows."""
    start = time.perf_counter()
    index = make_index(items, kind, **params)
    build = time.perf_counter() - start
    index.search(queries[:10], k)  # type: ignore[attr-defined]  # warm-up
    start = time.perf_counter()
    _, rows = index.search(queries, k)  # type: ignore[attr-defined]
    seconds = time.perf_counter() - start
    rec = 1.0 if exact is None else recall_at_k(rows, exact)
    return {"build_seconds": round(build, 3), "qps": round(len(queries) / seconds, 1),
            f"recall@{k}": round(rec, 4)}, rows


def beauty_factors(data_dir: Path, dim: int, n_queries: int,
                   seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(items [N, dim], queries [n_queries, dim])`` unit vectors from Beauty's truncated SVD.

    Raises:
        FileNotFoundError: when the Beauty files are not under ``data_dir``.
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.linalg import svds

    from training.recall_datasets import load_beauty

    data = load_beauty(data_dir)
    matrix = csr_matrix((np.ones(len(data)), (data.user, data.item)),
                        shape=(data.n_users, data.n_items))
    u, s, vt = svds(matrix, k=dim, random_state=seed)
    items = (vt.T * np.sqrt(s)).astype(np.float32)
    users = (u * np.sqrt(s)).astype(np.float32)
    rng = np.random.default_rng(seed)
    queries = users[rng.choice(len(users), min(n_queries, len(users)), replace=False)]

    def unit(x: np.ndarray) -> np.ndarray:
        norm = np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(x / norm)

    return unit(items), unit(queries)


def run_kinds(items: np.ndarray, queries: np.ndarray, k: int, ef_search: int,
              nprobe: int) -> dict[str, dict[str, float]]:
    """Figures of flat (the exact reference), HNSW and IVF on one item set."""
    figures: dict[str, dict[str, float]] = {}
    figures["flat"], exact = measure("flat", items, queries, k, None)
    figures["hnsw"], _ = measure("hnsw", items, queries, k, exact, ef_search=ef_search)
    figures["ivf"], _ = measure("ivf", items, queries, k, exact, nprobe=nprobe)
    return figures


def print_table(title: str, figures: dict[str, dict[str, float]], k: int,
                params: dict[str, str]) -> None:
    """Human table of one item set."""
    print(title)
    print(f"{'index':<6} {'build s':>9} {'QPS':>10} {'recall@' + str(k):>11}  params")
    for kind, fig in figures.items():
        print(f"{kind:<6} {fig['build_seconds']:>9.2f} {fig['qps']:>10.1f} "
              f"{fig[f'recall@{k}']:>11.4f}  {params[kind]}")


def params_of(n_items: int, ef_search: int, nprobe: int) -> dict[str, str]:
    """Index parameters as printed and recorded."""
    return {"flat": "exact", "hnsw": f"M=32 efConstruction=100 efSearch={ef_search}",
            "ivf": f"nlist={ivf_nlist(n_items)} nprobe={nprobe}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--spread", type=float, default=1.0)
    parser.add_argument("--ef-search", type=int, default=DEFAULT_EF_SEARCH)
    parser.add_argument("--nprobe", type=int, default=DEFAULT_NPROBE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=str(REPO_ROOT.parent / "shared" / "data"),
                        help="folder with amazon_beauty/ (real item vectors)")
    args = parser.parse_args(argv)
    data = clustered_unit_vectors(args.items + args.queries, args.dim, args.clusters,
                                  args.spread, args.seed)
    queries, items = data[:args.queries], data[args.queries:]
    figures = run_kinds(items, queries, args.k, args.ef_search, args.nprobe)
    params = params_of(len(items), args.ef_search, args.nprobe)
    load = os.getloadavg()
    print_table(f"{len(items):,} synthetic items x {args.dim} dims, {args.queries} queries, "
                f"top-{args.k}, {args.clusters} clusters (spread {args.spread}); load average "
                f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", figures, args.k, params)
    real: dict[str, object]
    try:
        b_items, b_queries = beauty_factors(Path(args.data), args.dim, args.queries, args.seed)
    except FileNotFoundError as exc:
        print(f"Amazon Beauty not found, real-data part skipped: {exc}")
        real = {"skipped": str(exc)}
    else:
        b_figures = run_kinds(b_items, b_queries, args.k, args.ef_search, args.nprobe)
        b_params = params_of(len(b_items), args.ef_search, args.nprobe)
        print_table(f"Amazon Beauty SVD item factors: {len(b_items):,} items x {args.dim} "
                    f"dims, {len(b_queries)} user queries, top-{args.k}", b_figures, args.k,
                    b_params)
        real = {"items": len(b_items), "params": b_params, **b_figures}
    print(json.dumps({"bench": "ann", "items": len(items), "dim": args.dim,
                      "queries": args.queries, "k": args.k, "params": params,
                      "loadavg": [round(x, 2) for x in load], **figures, "beauty": real}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
