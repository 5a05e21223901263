"""hf_trainer_finetune.py turned into distillation: three lines change (an import, the model, teacher_model=).

python examples/hf_trainer_distill.py --model teacher --train train.csv --dev dev.csv --output student
"""

import argparse

import numpy as np
from datasets import load_dataset
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding, set_seed
from distilkit import DistillationArguments as TrainingArguments, DistillationTrainer as Trainer, build_student

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--train", required=True)
parser.add_argument("--dev", required=True)
parser.add_argument("--output", required=True)
parser.add_argument("--epochs", type=float, default=3)
parser.add_argument("--lr", type=float, default=5e-5)
args = parser.parse_args()

data = load_dataset("csv", data_files={"train": args.train, "validation": args.dev})
labels = sorted(set(data["train"]["label"]))
label2id = {label: i for i, label in enumerate(labels)}
tokenizer = AutoTokenizer.from_pretrained(args.model)


def tokenize(batch):
    encoded = tokenizer(batch["text"], truncation=True, max_length=128)
    encoded["labels"] = [label2id[label] for label in batch["label"]]
    return encoded


def accuracy(eval_pred):
    return {"accuracy": float((np.argmax(eval_pred.predictions, -1) == eval_pred.label_ids).mean())}


data = data.map(tokenize, batched=True, remove_columns=["text", "label"])
set_seed(42)  # before the model: its new task head (or the student) starts from the seed too
id2label = dict(enumerate(labels))
model = build_student(teacher := AutoModelForSequenceClassification.from_pretrained(args.model), "half")
training_args = TrainingArguments(
    output_dir=args.output,
    num_train_epochs=args.epochs,
    learning_rate=args.lr,
    per_device_train_batch_size=16,
    eval_strategy="epoch",
    save_strategy="no",
    report_to="none",
)
collate = DataCollatorWithPadding(tokenizer)
train, dev = data["train"], data["validation"]
common = dict(train_dataset=train, eval_dataset=dev, data_collator=collate, compute_metrics=accuracy)
trainer = Trainer(model=model, teacher_model=teacher, args=training_args, **common)
trainer.train()
trainer.save_model(args.output)
tokenizer.save_pretrained(args.output)
print(trainer.evaluate())
