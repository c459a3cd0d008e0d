"""ecram-insitu: in-situ training of neural networks on simulated organic EC-RAM arrays.

Progressive gradient descent (van Doremaele et al., Sci. Adv. 10, eado8999, 2024) against
conventional backpropagation, from device measurements to figures, as a DVC pipeline.
"""

__version__ = "0.1.0"
