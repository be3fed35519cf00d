"""``chainrule compress`` and ``chainrule decompress``: lossless compression driven by a trained run's model."""

from __future__ import annotations

import argparse
import json

from chainrule.cli import options

COMPRESS_EXAMPLES = """examples:
  chainrule compress runs/shakespeare-transformer hamlet.txt --out hamlet.txt.cr
  chainrule compress runs/mnist-pixelcnn digit.png --out digit.cr
  chainrule compress runs/mnist-pixelcnn scans/ --out scans.cr --batch-size 64
  chainrule compress runs/visits-deepar-nb visits.txt --out visits.cr   # counts, one per line"""
DECOMPRESS_EXAMPLES = """examples:
  chainrule decompress runs/shakespeare-transformer hamlet.txt.cr --out hamlet-copy.txt
  chainrule decompress runs/mnist-pixelcnn scans.cr --out scans-copy/"""
HOW = ("The run's model gives the probability of each next symbol (a token of a text run, a pixel channel of an "
       "image run, a count of a series run) and a range coder spends -log2 p bits on it: the file costs about the "
       "model's NLL plus a small header. Decompressing needs the same run (checked by a fingerprint) and runs the "
       "model once per symbol.")


def add_parser(sub: options.Subparsers, fmt: options.Formatter) -> None:
    c = sub.add_parser("compress", help="compress a file losslessly with a trained run's model", formatter_class=fmt,
                       description=f"{HOW} A text run compresses any file (not only UTF-8); an image run a PNG or "
                                   "other image file (modes 1, L, RGB) or a folder of them; a series run with the "
                                   "negative_binomial head a file of counts, one per line (empty = missing).",
                       epilog=COMPRESS_EXAMPLES)
    options.add_run_argument(c, "run directory of a text, image or count-series model")
    c.add_argument("input", metavar="INPUT", help="file (text run), image / folder of images (image run), or file "
                                                   "of counts (series run)")
    options.add_out(c, None, "compressed file (default INPUT.cr; an existing file is only replaced when named "
                             "here)", "F.cr")
    options.add_batch_size(c, 16, "rows coded together: text streams or image tiles (default 16; more is faster, "
                                  "each text stream starts without context)")
    options.add_json(c)

    d = sub.add_parser("decompress", help="restore a file compressed with 'chainrule compress'", formatter_class=fmt,
                       description=f"{HOW} Text comes back byte for byte; images come back as PNG files with the "
                                   "same pixels, mode and size. Nothing is written unless the whole file decodes "
                                   "and matches its checksum.", epilog=DECOMPRESS_EXAMPLES)
    options.add_run_argument(d, "the run directory the file was compressed with")
    d.add_argument("file", metavar="F.cr", help="compressed file")
    options.add_out(d, None, "output file, or folder for a compressed folder (default: the original name beside "
                             "F.cr; an existing file is only replaced when named here)", "OUT")
    options.add_json(d)


def _compress(a: argparse.Namespace) -> None:
    from chainrule.compression import compress

    res = compress(a.run, a.input, a.out, batch_size=a.batch_size, progress=not a.json)
    if a.json:
        print(json.dumps(res, indent=2))
        return
    print(f"wrote {res['output']}: {res['input_bytes']:,} -> {res['output_bytes']:,} bytes, "
          f"{res['bits_per_unit']:.4f} bits/{res['unit']} (model {res['model_bits_per_unit']:.4f} + header "
          f"{res['header_bytes']} bytes) in {res['seconds']:.1f}s")


def _decompress(a: argparse.Namespace) -> None:
    from chainrule.compression import decompress

    res = decompress(a.run, a.file, a.out, progress=not a.json)
    if a.json:
        print(json.dumps(res, indent=2))
        return
    where = res["outputs"][0] if len(res["outputs"]) == 1 else f"{len(res['outputs'])} images"
    print(f"wrote {where} ({res['output_bytes']:,} bytes, checksum verified) in {res['seconds']:.1f}s")


def run(a: argparse.Namespace) -> None:
    {"compress": _compress, "decompress": _decompress}[a.command](a)
