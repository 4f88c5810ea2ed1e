"""Paper-vs-ours tables, figures and the HTML report, built only from run outputs (never from typed numbers).

Nothing here imports TensorFlow or Keras: the report steps must stay fast and light.
"""

from ran.report.outputs import outputs

__all__ = ["outputs"]
