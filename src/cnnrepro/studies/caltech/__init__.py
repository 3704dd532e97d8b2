"""Study ``caltech``: visualising CNNs on a 3-class Caltech-101 subset
(``papers/caltech101-visualizing-cnns.txt``).

Today: training, evaluation and the shared figures of its two models (a small CNN and
VGG19 transfer); the document's own artifacts are an open issue.
"""

from ...study import Study

STUDY = Study(name="caltech")
