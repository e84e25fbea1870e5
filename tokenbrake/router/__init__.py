"""The request router: a small classifier over prompt features or a sentence embedding
(classifier.py, features.py, embedding.py), how it scores a request (scoring.py), and how it is
trained on the RouteLLM data (training.py, training_data.py). The shipped weights are in models/.

May import: the package root, wire/, storage/ and limits/.
"""
