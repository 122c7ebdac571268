"""A training stand-in for the operator's tests: epochs of a given length, Katib's StdOut format.

``--lr`` decides the accuracy (best near 0.02); ``--epochs`` and ``--seconds`` (per epoch)
how long it runs; ``--fail`` exits 1 before reporting anything.
"""

import sys
import time

flags = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
if flags.get("fail") == "true":
    sys.exit(1)
lr = float(flags.get("lr", "0.02"))
for epoch in range(int(flags.get("epochs", "2"))):
    time.sleep(float(flags.get("seconds", "0.5")))
    accuracy = 0.95 - abs(lr - 0.02) * 2 - 0.05 / (epoch + 1)
    print(f"epoch {epoch}: Validation-accuracy={accuracy:.4f} loss={1 - accuracy:.4f}", flush=True)
