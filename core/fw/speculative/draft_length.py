"""How many guessed tokens each request proposes in the next step.

A guess is worth its expected accepted tokens and costs its rows. Verification keeps the
longest run of guesses the model agrees with, so with a per-position acceptance ``a`` a
guess of ``k`` tokens yields ``a + a^2 + ... + a^k`` tokens beyond the one the step makes
anyway. At the batch sizes where speculation runs, a step's time grows about linearly in
its rows: on this CPU a 6-row decode step of the embedded SmolLM2 takes ~1.47x a 1-row
step, so each extra row costs ~``ROW_COST`` of a one-row step. Proposing a fixed length
regardless of the guesses' record loses on text where they are seldom right (free writing
with n-gram lookup: a third of first guesses right, almost none of the later ones).

The lengths maximise the step's expected tokens per unit of time (a Dinkelbach iteration:
a guess position is worth proposing while its chance of being reached and accepted
exceeds the step's current rate times its cost). ``a`` is estimated per request from its
recent guesses, pulled toward an even prior as old evidence decays, so a request whose
guesses stopped paying proposes nothing, and tries again some steps later (its text may
have turned to copying a passage).
"""

from __future__ import annotations

from collections.abc import Sequence

#: the time of one more row in a small decode step, in one-row steps (measured above)
ROW_COST = 0.1
#: the prior per-position acceptance, and how many positions' worth of evidence it weighs
PRIOR_ACCEPTANCE, PRIOR_WEIGHT = 0.5, 2.0
#: each step a request's evidence is multiplied by this: ~50 steps of memory. It must
#: keep more than ``1 / ROW_COST`` positions of evidence, or a request whose guesses always
#: fail would never look bad enough to stop; a failed probe then waits ~6 steps
DECAY = 0.98
#: Dinkelbach iterations; the lengths settle in two or three
ROUNDS = 4


class DraftLengths:
    """Per request: accepted and tried guess positions, recent ones weighing most."""

    def __init__(self, row_cost: float | None = None):
        self.row_cost = ROW_COST if row_cost is None else row_cost
        self._evidence: dict[str, list[float]] = {}  # request id -> [accepted, tried]

    def acceptance(self, request_id: str) -> float:
        accepted, tried = self._evidence.get(request_id, (0.0, 0.0))
        return (accepted + PRIOR_ACCEPTANCE * PRIOR_WEIGHT) / (tried + PRIOR_WEIGHT)

    def choose(self, request_ids: Sequence[str], rooms: Sequence[int], batch_rows: int) -> list[int]:
        """The number of guesses for each request (at most its room; 0: none) in a step of
        ``batch_rows`` rows before guesses. Ages every listed request's evidence by a step."""
        for request_id in request_ids:
            evidence = self._evidence.setdefault(request_id, [0.0, 0.0])
            evidence[0] *= DECAY
            evidence[1] *= DECAY
        if self.row_cost <= 0:
            return list(rooms)
        # reach[i][j]: the chance that request i's guess j+1 is reached and accepted
        reach = []
        for request_id, room in zip(request_ids, rooms):
            a = self.acceptance(request_id)
            reach.append([a ** (j + 1) for j in range(room)])
        base_cost = 1 + self.row_cost * (batch_rows - 1)
        rate = batch_rows / base_cost  # tokens per unit of time without guesses
        lengths = [0] * len(rooms)
        for _ in range(ROUNDS):
            threshold = rate * self.row_cost
            lengths = [sum(1 for p in chances if p > threshold) for chances in reach]
            gained = sum(sum(chances[:k]) for chances, k in zip(reach, lengths))
            rate = (batch_rows + gained) / (base_cost + self.row_cost * sum(lengths))
        return lengths

    def observe(self, request_id: str, proposed: int, accepted: int) -> None:
        """A guess of ``proposed`` tokens of which the first ``accepted`` were kept: the
        positions tried are the accepted ones and the first refused one."""
        evidence = self._evidence.setdefault(request_id, [0.0, 0.0])
        evidence[0] += accepted
        evidence[1] += accepted + (1 if accepted < proposed else 0)

    def forget(self, request_id: str) -> None:
        self._evidence.pop(request_id, None)
