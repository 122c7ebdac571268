"""Search spaces for ``KatibClient.tune()``, named as in Katib's SDK.

>>> from katib import search
>>> space = {"lr": search.double(1e-4, 1e-1, distribution="logUniform"),
...          "layers": search.int(1, 4), "optimizer": search.categorical(["sgd", "adam"])}
"""

from katib.sdk._search import DISTRIBUTIONS, Choice, Parameter, categorical, discrete, double
from katib.sdk._search import int_ as int

__all__ = ["DISTRIBUTIONS", "Choice", "Parameter", "categorical", "discrete", "double", "int"]
