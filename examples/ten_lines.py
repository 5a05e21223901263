"""The whole path in Python: teacher → student → int8 → evaluated, on the packaged MiniLM and BBC News by default.

python examples/ten_lines.py                       # minilm-l6 on bbc-news (about half an hour on 2 CPU cores)
python examples/ten_lines.py --model my-encoder --data train.csv --test test.csv --student 3 --epochs 1
"""

import argparse

import distilkit

parser = argparse.ArgumentParser()
parser.add_argument("--model", default="minilm-l6")
parser.add_argument("--data", default="bbc-news")
parser.add_argument("--test", default=None, help="held-out data to score on (default: the test split of --data)")
parser.add_argument("--student", default="3")
parser.add_argument("--output", default="runs/ten-lines")
parser.add_argument("--epochs", type=float, default=3)
parser.add_argument("--lr", type=float, default=1e-4)
args = parser.parse_args()
options = dict(data=args.data, epochs=args.epochs, lr=args.lr, overwrite=True)

teacher = distilkit.finetune(model=args.model, output=f"{args.output}/teacher", **options)
student = distilkit.distill(teacher=teacher.folder, student=args.student, output=f"{args.output}/student", **options)
int8 = distilkit.quantize(model=student.folder, output=f"{args.output}/student-int8", overwrite=True)
for name, model in [("teacher", teacher.folder), ("student", student.folder), ("student int8", int8)]:
    print(name, distilkit.evaluate(model=model, data=args.test or args.data)["accuracy"])
