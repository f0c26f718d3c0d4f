"""A small built-in corpus of varied English texts for the accuracy report on real activations.

Short and medium sentences from different registers (news, technical, conversational, lists,
numbers, questions) plus one long paragraph that nearly fills MiniLM's 256-token window, so that
the attention methods see sequence lengths from ~10 to ~250 tokens. Written for this project.
"""

from __future__ import annotations

__all__ = ["CORPUS", "LONG_TEXT", "CALIBRATION", "corpus"]

LONG_TEXT = (
    "Hardware accelerators for transformer models spend most of their energy moving data rather "
    "than computing with it, and the attention layer is the worst offender because its cost grows "
    "with the square of the sequence length. Several research groups have therefore proposed "
    "approximations that reduce the work before it reaches the multipliers. One family groups "
    "similar tokens with locality-sensitive hashing and computes attention only between cluster "
    "centroids, correcting the error with a second clustering of the residuals. Another family "
    "keeps every token but estimates the scores cheaply with the four most significant bits of "
    "each operand, discards the keys whose estimate falls far below the row maximum, and spends "
    "full precision only on the survivors. A third replaces the dot products with binary feature "
    "selection and an L1 distance so that the alignment needs no multipliers at all, while a "
    "fourth samples the rows of the value projection in proportion to their norms and draws more "
    "samples for the tokens that receive the most attention. Each idea trades accuracy for speed "
    "in a different way, and the only honest way to compare them is to run all of them on the "
    "same real activations, measure the error they introduce at every layer, and check whether "
    "the final sentence embedding still points in the same direction as the exact one. That is "
    "precisely what this report does, head by head and layer by layer, for a small encoder."
)

CORPUS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Stock markets rallied on Tuesday after the central bank held interest rates steady for a third month.",
    "Can you send me the slides from yesterday's meeting before noon?",
    "A systolic array streams operands through a grid of processing elements, each of which multiplies "
    "and accumulates.",
    "She planted tomatoes, basil, peppers and three kinds of lettuce in the raised beds behind the house.",
    "Error 404: the requested page could not be found on this server.",
    "In 1969, Apollo 11 landed on the Moon and Neil Armstrong became the first person to walk on its surface.",
    "Why does the bread always fall on the buttered side?",
    "The committee will review all applications received before 31 March and notify candidates by email.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "I can't believe it's already snowing; it was warm and sunny only a week ago!",
    "Fixed-point arithmetic represents real numbers as integers scaled by a power of two, which makes "
    "multipliers small and fast but forces the designer to choose every width and rounding mode with care.",
    LONG_TEXT,
)

# Held-out texts for calibrating per-head thresholds (LATTE): not part of the evaluation corpus.
CALIBRATION: tuple[str, ...] = (
    "The train to Edinburgh was delayed by forty minutes because of a signal failure near York.",
    "Attention weights tell the model which earlier words matter most for predicting the next one.",
    "Please remember to water the plants and feed the cat while we are away next weekend.",
    "Quantum computers exploit superposition and entanglement to explore many states at once, but "
    "today's devices are noisy and small.",
    # A longer text so that thresholds are also calibrated on long rows (the score gaps grow with n).
    "The museum reopened last spring after a two-year renovation that replaced the leaking glass roof, "
    "added a lift to every floor and moved the collection of maritime instruments into a bright new hall. "
    "Visitors can now follow the history of navigation from simple compasses and hourglasses to the "
    "chronometers that finally solved the problem of longitude, and children can steer a model ship "
    "through a simulated storm. The café on the top floor looks out over the harbour, and on clear "
    "evenings the staff open the terrace so that guests can watch the ferries come and go.",
)


def corpus(quick: bool = False) -> tuple[str, ...]:
    """The evaluation texts; ``quick`` keeps three short and medium ones (12-40 tokens)."""
    if quick:
        return (CORPUS[0], CORPUS[3], CORPUS[11])
    return CORPUS
