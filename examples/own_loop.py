"""Distillation in a plain PyTorch loop, with distilkit's losses: logit KD + hidden-state MSE + attention MSE.

    python examples/own_loop.py --teacher runs/teacher/model --data train.csv --output student

No Trainer: the loop below is all there is. distilkit gives the loss formulas (distilkit.losses) and one call,
distilkit.capture_attention, that lets the models report their pre-softmax attention scores inside a
`distilkit.recording()` block (hidden states come from transformers itself).
"""

import argparse

import torch
from datasets import load_dataset
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, AutoTokenizer, DataCollatorWithPadding

import distilkit
from distilkit.losses import attention_mse_loss, hidden_mse_loss, kd_loss

parser = argparse.ArgumentParser()
parser.add_argument("--teacher", required=True, help="a fine-tuned model folder")
parser.add_argument("--data", required=True, help="a CSV with text and label columns")
parser.add_argument("--output", required=True)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--lr", type=float, default=1e-4)
args = parser.parse_args()

teacher = AutoModelForSequenceClassification.from_pretrained(args.teacher).eval()
tokenizer = AutoTokenizer.from_pretrained(args.teacher)
student = distilkit.build_student(teacher, "half")  # every other teacher layer, as DistilBERT initialises
pairs = [(i + 1, 2 * (i + 1)) for i in range(student.config.num_hidden_layers)]  # student ← teacher hidden states
distilkit.capture_attention(student, teacher)  # the one set-up call: attention scores can now be recorded

data = load_dataset("csv", data_files=args.data)["train"]
data = data.map(lambda b: tokenizer(b["text"], truncation=True, max_length=128), batched=True)
data = data.remove_columns([c for c in data.column_names if c not in ("input_ids", "attention_mask", "token_type_ids")])
loader = DataLoader(data, batch_size=16, shuffle=True, collate_fn=DataCollatorWithPadding(tokenizer))
optimizer = torch.optim.AdamW(student.parameters(), lr=args.lr)

student.train()
for epoch in range(args.epochs):
    for batch in loader:
        with torch.no_grad(), distilkit.recording(scores=True) as seen_by_teacher:
            t = teacher(**batch, output_hidden_states=True)
        with distilkit.recording(scores=True) as seen_by_student:
            s = student(**batch, output_hidden_states=True)
        mask = batch["attention_mask"]
        loss = kd_loss(s.logits, t.logits, temperature=2.0)
        for s_layer, t_layer in pairs:
            loss = loss + hidden_mse_loss(s.hidden_states[s_layer], t.hidden_states[t_layer], mask, normalize=True)
            s_scores = seen_by_student.attention_scores[s_layer - 1]
            t_scores = seen_by_teacher.attention_scores[t_layer - 1]
            loss = loss + attention_mse_loss(s_scores, t_scores, mask, normalize=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch + 1}: loss {loss.item():.4f}")

student.save_pretrained(args.output)
tokenizer.save_pretrained(args.output)
