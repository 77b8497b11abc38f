"""``surgery dataset``: a dataset's annotations read, counted, and every quirk and skipped file listed."""

from __future__ import annotations

import json


def _cmd_dataset(args) -> int:
    from surgery_core.data.datasets import load_coco, load_dior

    if args.coco:
        ds = load_coco(args.coco, args.images)
    else:
        ds = load_dior(args.dior, args.split)
    summary = ds.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        q = summary["quirks"]
        print(f"{ds.name} {ds.split}: {summary['images']} images, {summary['objects']} objects, "
              f"{q['images_found']} image files found")
        for c, n in summary["per_class"].items():
            print(f"  {c:<26} {n:>7}")
        print(f"quirks: zero-size boxes {q['zero_size_boxes']}, boxes past the image (clipped) "
              f"{q['boxes_past_image_clipped']}, touching the border {q['boxes_touching_border']}, "
              f"depth != 3 {q['depth_not_3']}, with XML declaration {q['with_xml_declaration']}")
        for item in q["skipped_files"] + q["skipped_objects"]:
            print(f"skipped: {item['file']}: {item['reason']}")
    return 0


def add_parser(sub) -> None:
    d = sub.add_parser("dataset", help="read a dataset's annotations and print counts and quirks")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--dior", help="DIOR root (release layout)")
    src.add_argument("--coco", help="COCO-format annotation JSON")
    d.add_argument("--images", help="image folder for --coco")
    d.add_argument("--split", default="test", help="train, val, test, trainval or all (DIOR)")
    d.add_argument("--json", action="store_true", help="print a JSON object")
    d.set_defaults(func=_cmd_dataset)
