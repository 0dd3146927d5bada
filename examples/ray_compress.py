"""Compress a folder or bucket of images into .tfci files with Ray Data and the tfci package.

    python examples/ray_compress.py INPUT OUTPUT --model b2018-gdn-128-2 [--target-bpp 0.5]
        [--address auto] [--num-cpus 2]

INPUT and OUTPUT are local folders or URIs of any filesystem pyarrow knows (``s3://bucket/in``,
``gs://...``): the files are read by ``ray.data.read_binary_files`` and the outputs written through
``pyarrow.fs``, so the same command runs on a laptop and on a cluster (``--address auto`` joins the
running cluster; each worker needs ``pip install tfci`` and the models, e.g. a wheel that carries
them). Every image becomes ``OUTPUT/<file name>.tfci``, byte-identical to what ``tfci-enc compress``
writes for it. An image that cannot be read or coded is recorded with its error in the results table
(``OUTPUT/_tfci_results.parquet``) instead of failing the job; a summary is printed at the end.

Requirements: examples/requirements-ray.txt.
"""

import argparse
import os
import posixpath
import sys
import time

import numpy as np
import pyarrow.fs as pafs
import ray

import tfci

RESULTS = "_tfci_results.parquet"


class CompressBatch:
    """One per Ray actor: the model is loaded once, then every batch of files is coded with it."""

    def __init__(self, model, output, target_bpp=None, model_dir=None):
        self.codec = tfci.Codec(model, model_dir=model_dir)
        self.target_bpp = target_bpp
        self.fs, self.root = pafs.FileSystem.from_uri(output)

    def __call__(self, batch):
        rows = {k: [] for k in ("path", "output", "bytes_in", "bytes_out", "pixels", "bpp",
                                "seconds", "error")}
        for path, data in zip(batch["path"], batch["bytes"]):
            start = time.perf_counter()
            name = posixpath.basename(str(path)) + ".tfci"
            out, size, pixels, error = posixpath.join(self.root, name), 0, 0, ""
            try:
                image = tfci.read_image(bytes(data))  # tfci-enc's own decoder: the same file
                if self.target_bpp is None:
                    tfci_bytes = self.codec.compress(image)
                else:
                    tfci_bytes = self.codec.compress(image, target_bpp=self.target_bpp)
                pixels = image.shape[0] * image.shape[1]
                with self.fs.open_output_stream(out) as f:
                    f.write(tfci_bytes)
                size = len(tfci_bytes)
            except Exception as e:  # recorded per image; the job goes on
                error, out = f"{type(e).__name__}: {e}", ""
            rows["path"].append(str(path))
            rows["output"].append(out)
            rows["bytes_in"].append(len(data))
            rows["bytes_out"].append(size)
            rows["pixels"].append(pixels)
            rows["bpp"].append(8.0 * size / pixels if pixels else float("nan"))
            rows["seconds"].append(time.perf_counter() - start)
            rows["error"].append(error)
        return {k: np.asarray(v) for k, v in rows.items()}


def run(input_uri, output_uri, model, target_bpp=None, model_dir=None, actors=None, batch_size=4):
    """Runs the job on the connected Ray cluster; returns the results as a pandas DataFrame.

    ``actors``: coding actors of one CPU each (default: the cluster's CPUs less one, which the file
    reads need: with every CPU held by an actor the reads never run and the job waits forever).
    Each actor's codec uses every core of its machine (rayon), so one actor per machine is enough.
    """
    if actors is None:
        actors = max(1, int(ray.cluster_resources().get("CPU", 1)) - 1)
    fs, root = pafs.FileSystem.from_uri(output_uri)
    fs.create_dir(root, recursive=True)
    files = ray.data.read_binary_files(input_uri, include_paths=True)
    results = files.map_batches(
        CompressBatch,
        fn_constructor_kwargs=dict(model=model, output=output_uri, target_bpp=target_bpp,
                                   model_dir=model_dir),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=1,
    ).materialize()
    results.write_parquet(posixpath.join(output_uri, RESULTS))
    return results.to_pandas().sort_values("path", ignore_index=True)


def summary(df):
    """images, failures, bytes in/out, mean bpp and time of the coded ones."""
    ok = df[df["error"] == ""]
    return {
        "images": len(df),
        "coded": len(ok),
        "failed": len(df) - len(ok),
        "bytes_in": int(df["bytes_in"].sum()),
        "bytes_out": int(ok["bytes_out"].sum()),
        "mean_bpp": float(ok["bpp"].mean()) if len(ok) else float("nan"),
        "total_bpp": float(8 * ok["bytes_out"].sum() / ok["pixels"].sum()) if len(ok) else float("nan"),
        "mean_seconds": float(ok["seconds"].mean()) if len(ok) else float("nan"),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("input", help="folder or URI of the images")
    ap.add_argument("output", help="folder or URI for the .tfci files and the results table")
    ap.add_argument("--model", required=True, help="e.g. b2018-gdn-128-2, or a family with --target-bpp")
    ap.add_argument("--target-bpp", type=float)
    ap.add_argument("--model-dir", help="model folder (default: as tfci-enc finds it)")
    ap.add_argument("--address", help="Ray cluster to join (e.g. auto); default: a local one")
    ap.add_argument("--num-cpus", type=int, default=os.cpu_count(), help="CPUs of a local cluster")
    ap.add_argument("--actors", type=int, default=None,
                    help="coding actors, one CPU each (default: the cluster's CPUs less one)")
    args = ap.parse_args(argv)
    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.num_cpus, include_dashboard=False)
    start = time.perf_counter()
    df = run(args.input, args.output, args.model, args.target_bpp, args.model_dir, args.actors)
    s = summary(df)
    s["wall_seconds"] = round(time.perf_counter() - start, 1)
    for k, v in s.items():
        print(f"{k:>13}: {v:.4f}" if isinstance(v, float) else f"{k:>13}: {v}")
    for row in df[df["error"] != ""].itertuples():
        print(f"failed: {row.path}: {row.error}", file=sys.stderr)
    print(f"results: {posixpath.join(args.output, RESULTS)}")
    return 0 if s["coded"] else 1


if __name__ == "__main__":
    sys.exit(main())
