"""A small built-in corpus of varied English texts for the accuracy report on real activations.

Short and medium sentences from different registers (news, technical, conversational, lists,
numbers, questions) plus one long paragraph that nearly fills MiniLM's 256-token window, so that
the attention methods see sequence lengths from ~10 to ~250 tokens. Written for this project.

Issue 14 splits (fixed, disjoint): :data:`EVALUATION` (34 texts: :data:`CORPUS` plus 21 more, three
of them near the 256-token limit) and :data:`CALIBRATION_SET` (28 texts: :data:`CALIBRATION` plus
23 more, three near the limit). ``attn-rtl calibrate`` fits on the calibration split only; the
accuracy report and its retrieval metric use the evaluation split. :func:`read_text_file` reads
the user's texts (one per line).
"""

from __future__ import annotations

__all__ = ["CORPUS", "LONG_TEXT", "CALIBRATION", "corpus", "EVALUATION", "CALIBRATION_SET", "evaluation_texts",
           "calibration_texts", "read_text_file"]

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


# -- issue 14: a larger corpus for calibration and the downstream (retrieval) metric ----------------
# Written for this project. Topics and registers vary (science, cooking, sport, law, travel, code,
# medicine, history, finance, weather, dialogue); lengths run from a few tokens to passages that
# nearly fill the 256-token window. Several topics appear more than once (in different words) so
# that nearest-neighbour retrieval between the evaluation texts is meaningful.

LONG_EVAL_1 = (
    "The village bakery opens at five in the morning, long before the first bus arrives from the valley. "
    "The baker, who took over the shop from her uncle twelve years ago, still uses his sourdough starter, "
    "which she feeds twice a day with rye flour and lukewarm water. Each batch of dough rests overnight in "
    "wicker baskets lined with linen, and the loaves are scored by hand just before they go into the "
    "wood-fired oven. On Saturdays the queue stretches past the post office, because people drive in from "
    "the neighbouring towns for the walnut bread and the small almond cakes that sell out before nine. "
    "She has refused several offers to supply supermarkets, saying that the bread would lose its character "
    "if it had to survive two days on a shelf. Instead she teaches a weekend class in the back room, where "
    "beginners learn to judge a dough by touch, to shape a tight boule and to wait patiently while the "
    "crust crackles as it cools. Most of her students go home with flour on their sleeves and a jar of "
    "starter of their own, and a surprising number of them come back a year later to show her what they "
    "have baked."
)

LONG_EVAL_2 = (
    "A compiler turns source code into machine instructions in several stages. The lexer reads characters "
    "and groups them into tokens such as identifiers, numbers and operators; the parser arranges the tokens "
    "into a syntax tree according to the grammar of the language; semantic analysis checks that names are "
    "declared, that types match and that functions are called with the right number of arguments. The tree "
    "is then lowered into an intermediate representation that is easier to optimise, often a sequence of "
    "simple instructions on an unlimited number of virtual registers in static single assignment form. "
    "Optimisation passes remove dead code, fold constants, move invariant computations out of loops and "
    "inline small functions. Finally the back end selects real machine instructions, allocates the virtual "
    "registers to the few physical ones, spilling values to memory when it runs out, and schedules the "
    "instructions so that the processor's pipelines stay busy. Modern compilers run dozens of such passes, "
    "and the order in which they run can change the speed of the resulting program by a surprising amount, "
    "which is why the default pipelines are tuned on large collections of benchmarks."
)

LONG_EVAL_3 = (
    "The storm reached the coast shortly after midnight, bringing gusts of more than one hundred kilometres "
    "an hour and a surge that flooded the harbour road within minutes. Emergency services had spent the "
    "previous day moving residents of the lowest streets to the sports hall on the hill, where volunteers "
    "handed out blankets, hot soup and dry clothes. By dawn the wind had dropped, but the river was still "
    "rising because of the heavy rain inland, and engineers opened the sluice gates to relieve the pressure "
    "on the old embankment. Power was cut to about twelve thousand homes, and several trees fell across the "
    "railway line, so trains between the two main towns were replaced by buses for the rest of the week. "
    "The mayor thanked the volunteers and promised that the long-delayed flood wall would finally be built, "
    "although residents who had heard the same promise after the last storm were sceptical. Insurance "
    "assessors arrived on the third day, and shopkeepers along the quay began the familiar work of pumping "
    "out cellars, throwing away ruined stock and drying the walls with borrowed fans."
)

LONG_CALIB_1 = (
    "Bees communicate the location of food through a waggle dance performed on the vertical surface of the "
    "comb inside the dark hive. The forager runs a short straight line while shaking her abdomen, then "
    "circles back to the start, alternating left and right loops. The angle of the straight run relative to "
    "vertical encodes the direction of the flowers relative to the sun, and the duration of the run encodes "
    "the distance, roughly one second for every kilometre. Other workers follow the dancer closely, sensing "
    "the vibrations with their antennae and smelling the nectar she carries, and then fly out to search the "
    "indicated area. Because the sun moves across the sky during the day, the dancers adjust the angle as "
    "time passes, even when they have been inside the hive for an hour. Researchers have confirmed the code "
    "by moving feeders and watching how the dances change, and by building small robotic bees whose dances "
    "recruit real foragers. The system is not perfect: dances for nearby food are less precise, and colonies "
    "sometimes waste effort on poor sources, but on average it lets a colony exploit the best patches of "
    "flowers across several square kilometres of countryside."
)

LONG_CALIB_2 = (
    "When you sign a lease for a flat, read the whole contract before you pay a deposit. Check how long the "
    "tenancy lasts, how much notice either side must give, and whether the rent can rise during the term. "
    "The contract should say who is responsible for repairs: usually the landlord must keep the structure, "
    "the heating and the plumbing in working order, while the tenant must avoid damage and report problems "
    "promptly. Take dated photographs of every room when you move in, including marks on the walls and the "
    "state of the appliances, and send them to the landlord so that nobody can later claim the damage was "
    "yours. In many countries the deposit must be held in a protected scheme and returned within a fixed "
    "number of days after the tenancy ends, minus any justified deductions. Keep copies of all messages and "
    "receipts. If a dispute arises, most schemes offer free mediation, which is faster and cheaper than going "
    "to court. Finally, ask whether pets, subletting or running a business from home are allowed, because "
    "breaking such clauses can give the landlord grounds to end the tenancy early."
)

LONG_CALIB_3 = (
    "The marathon started in light drizzle, and the leading group of eight runners passed halfway in just "
    "over an hour and three minutes, a pace that would have broken the course record. At the thirtieth "
    "kilometre the defending champion surged on the long climb past the cathedral, and only two athletes "
    "could follow him. One of them dropped back at the drinks station, clutching his side, leaving a duel "
    "between the champion and a twenty-two-year-old debutant who had never raced the distance before. The "
    "younger runner sat on his shoulder for six kilometres, then moved ahead on the cobbled stretch along "
    "the river, and the gap grew steadily as the crowds roared. He crossed the line in two hours, six "
    "minutes and forty seconds, eleven seconds outside the record, and collapsed into the arms of his coach. "
    "The champion finished second and said afterwards that he had simply been beaten by a stronger man on "
    "the day. In the women's race, a former track specialist won by almost two minutes after running alone "
    "from the twenty-fifth kilometre, and the wheelchair race ended in a sprint decided by less than a "
    "second."
)

EVALUATION_EXTRA: tuple[str, ...] = (
    "Sourdough bread needs a lively starter, a long slow rise and a very hot oven.",
    "How do I reset my password if I no longer have access to the old email address?",
    "The central bank raised its key rate by a quarter point to curb inflation, which reached 4.1 percent.",
    "Our flight was cancelled, so we spent the night on the airport floor with two tired children.",
    "Vaccines train the immune system to recognise a pathogen without causing the disease itself.",
    "def mean(xs): return sum(xs) / len(xs)  # fails on an empty list",
    "The home side scored twice in the last ten minutes to win the cup final three goals to two.",
    "Heavy rain and strong winds are expected along the coast tonight; residents should avoid the seafront.",
    "A loop-invariant computation can be hoisted out of the loop by the optimiser.",
    "Thanks!",
    "The treaty ended the war but left the border disputes unresolved for another generation.",
    "Knead the dough for ten minutes until it is smooth and elastic, then leave it covered in a warm place.",
    "Neural networks learn by adjusting their weights to reduce a loss measured on training examples.",
    "The tenant must give two months' written notice before leaving the flat.",
    "Doctors recommend at least seven hours of sleep a night for most adults.",
    "Which team won the league last season, and who was its top scorer?",
    "Memory bandwidth, not arithmetic, limits the speed of most attention kernels on long sequences.",
    "The old lighthouse keeper climbed the spiral stairs every evening to light the lamp.",
    LONG_EVAL_1,
    LONG_EVAL_2,
    LONG_EVAL_3,
)

CALIBRATION_EXTRA: tuple[str, ...] = (
    "Preheat the oven to 220 degrees and bake the rolls for fifteen minutes until golden.",
    "The striker was sent off for a second yellow card just before half time.",
    "Inflation fell for the third month in a row as energy prices eased.",
    "Where is the nearest pharmacy that is open on Sunday?",
    "A hash table stores keys in buckets chosen by a hash function, giving constant-time lookups on average.",
    "The patient was given antibiotics and discharged after two days of observation.",
    "Snow closed the mountain pass, and drivers were told to fit chains or turn back.",
    "The river bursts its banks almost every spring when the snow melts in the hills.",
    "OK, see you at eight.",
    "The castle was built in the twelfth century and rebuilt after a fire in 1540.",
    "Gradient descent updates each parameter in the direction that most reduces the error.",
    "Landlords must return the deposit within thirty days unless there is damage beyond normal wear.",
    "Our hotel room overlooked the old square, where a band played folk music every evening.",
    "Please find attached the signed contract and the invoice for the first quarter.",
    "Matrix multiplication dominates the run time of a transformer's feed-forward layers.",
    "He ordered a coffee, opened his laptop and started answering the emails that had piled up overnight.",
    "Tides are caused mainly by the Moon's gravity pulling on the oceans as the Earth rotates.",
    "Is it cheaper to take the train or to rent a car for a week in the north of the country?",
    "The orchestra rehearsed the symphony for three weeks before the opening night.",
    "Add salt only at the end, because the sauce reduces and becomes saltier as it simmers.",
    LONG_CALIB_1,
    LONG_CALIB_2,
    LONG_CALIB_3,
)

#: The fixed evaluation split of issue 14 (per-head and end-to-end figures, retrieval metric).
EVALUATION: tuple[str, ...] = CORPUS + EVALUATION_EXTRA
#: The fixed calibration split of issue 14 (``attn-rtl calibrate``); disjoint from EVALUATION.
CALIBRATION_SET: tuple[str, ...] = CALIBRATION + CALIBRATION_EXTRA


def evaluation_texts(quick: bool = False) -> tuple[str, ...]:
    """The evaluation split; ``quick`` keeps six short and medium texts (same topics in pairs)."""
    if quick:
        return (CORPUS[0], CORPUS[3], CORPUS[11], EVALUATION_EXTRA[0], EVALUATION_EXTRA[8], EVALUATION_EXTRA[16])
    return EVALUATION


def calibration_texts(quick: bool = False) -> tuple[str, ...]:
    """The calibration split; ``quick`` keeps four short and medium texts."""
    if quick:
        return (CALIBRATION[0], CALIBRATION[1], CALIBRATION_EXTRA[4], CALIBRATION_EXTRA[14])
    return CALIBRATION_SET


def read_text_file(path: str) -> tuple[str, ...]:
    """Texts from a file, one per line (blank lines and lines starting with '#' skipped)."""
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"text file {path} not found")
    texts = tuple(line.strip() for line in p.read_text(encoding="utf-8").splitlines())
    texts = tuple(t for t in texts if t and not t.startswith("#"))
    if not texts:
        raise ValueError(f"text file {path} holds no texts (one text per line)")
    return texts
