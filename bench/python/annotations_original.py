#!/usr/bin/python3
"""The original's annotation readers on one file (chatbridge-bench annotations runs this beside ours).

    /usr/bin/python3 bench/python/annotations_original.py --reader valor FILE

valor: VALORDataset.__init__ (custom_datasets/valor_data/data.py) keeps json.load(open(txt)).
lavis: BaseDataset.__init__ (LAVIS, which ChatBridge copies) extends a list with json.load of each
annotation file and stamps every record with instance_id = str(index); CaptionDataset.__init__ then
maps each image_id to a number. Prints one JSON object: the keys of bench/annotation_bench.h.
"""
import argparse
import json
import resource
import sys
import time


def rss_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def load_valor(path):
    with open(path) as f:
        return json.load(f)


def load_lavis(path):
    annotation = []
    with open(path) as f:
        annotation.extend(json.load(f))
    for idx, ann in enumerate(annotation):
        ann["instance_id"] = str(idx)
    img_ids, n = {}, 0
    for ann in annotation:
        if ann["image_id"] not in img_ids:
            img_ids[ann["image_id"]] = n
            n += 1
    return annotation, img_ids


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reader", choices=["valor", "lavis"], required=True)
    ap.add_argument("file")
    a = ap.parse_args()
    baseline = rss_mb("VmRSS")
    c0, t0 = time.process_time(), time.perf_counter()
    held = load_valor(a.file) if a.reader == "valor" else load_lavis(a.file)
    startup, cpu = time.perf_counter() - t0, time.process_time() - c0
    records = len(held) if a.reader == "valor" else len(held[0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    json.dump({"reader": a.reader, "records": records, "startup_s": startup, "cpu_s": cpu, "baseline_rss_mb": baseline,
               "peak_rss_mb": peak, "bytes_per_record": (peak - baseline) * 1048576 / max(records, 1)}, sys.stdout)
    print()


if __name__ == "__main__":
    main()
