"""The Branin function, a classic 2-D test for optimizers: prints ``loss=<value>``.

Its minimum, 0.397887, is reached at (-pi, 12.275), (pi, 2.275) and (9.42478, 2.475).
"""

import argparse
import math


def branin(x1: float, x2: float) -> float:
    b = 5.1 / (4 * math.pi**2)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--x1", type=float, required=True, help="in [-5, 10]")
    parser.add_argument("--x2", type=float, required=True, help="in [0, 15]")
    args = parser.parse_args()
    print(f"loss={branin(args.x1, args.x2):.6f}")


if __name__ == "__main__":
    main()
