# The README's many-to-one classifier written the way a PyTorch user would (the line count the README compares):
# is the sum of a sequence of 5 to 30 numbers positive? 2 LSTM layers, lengths vary. Run: python classifier.py
import torch
from torch import nn
from torch.nn.utils.rnn import pack_sequence

torch.manual_seed(1)
def example():
    series = torch.rand(torch.randint(5, 31, ()).item()) * 2 - 1
    return series, int(series.sum() > 0)
examples = [example() for _ in range(1000)]
train, val = examples[:900], examples[900:]

class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 32, num_layers=2)
        self.head = nn.Linear(32, 2)
    def forward(self, series):
        packed = pack_sequence([s.unsqueeze(1) for s in series], enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return self.head(h[-1])

model = Classifier()
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
step = 0
while step < 150:
    for k in torch.randperm(len(train)).split(32):
        batch = [train[i] for i in k]
        loss = nn.functional.cross_entropy(model([s for s, _ in batch]), torch.tensor([y for _, y in batch]))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 5)
        optimizer.step()
        step += 1
        if step == 150:
            break

test = [example() for _ in range(500)]
with torch.no_grad():
    val_loss = nn.functional.cross_entropy(model([s for s, _ in val]), torch.tensor([y for _, y in val]))
    predicted = model([s for s, _ in test]).argmax(1)
accuracy = (predicted == torch.tensor([y for _, y in test])).float().mean().item()
print(f"validation loss {val_loss.item()}, test accuracy {accuracy}")
