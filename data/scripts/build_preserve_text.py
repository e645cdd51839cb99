"""Build data/preserve_text.jsonl: general text whose behaviour edits should preserve.

Greedy continuations (48 tokens) by the default model of 80 generic openings,
written for the project, on topics far from the edited facts. LocFT-BF's
null-space constraint collects the tuned layer's inputs over this text (plus
same-template prompts about other subjects), so it must be disjoint from the
reference text used to measure perplexity (data/reference_text.jsonl) and
from every evaluation prompt.

Run from the repository root:
    EDITKIT_CACHE=... .venv/bin/python data/scripts/build_preserve_text.py
"""

from __future__ import annotations

import json
from pathlib import Path

from editkit.evaluate.generation import decode_completion, greedy_generate
from editkit.models import load_model
from editkit.outputs import atomic_write_text

OUT = Path(__file__).resolve().parents[1] / "preserve_text.jsonl"

OPENINGS = [
    "Here is a simple recipe for tomato soup:",
    "The best way to learn a new language is",
    "When you plant a vegetable garden, the first thing to do is",
    "A good night's sleep matters because",
    "To change a flat tyre on a bicycle,",
    "The water cycle begins when",
    "Photosynthesis is the process by which",
    "In the morning I usually",
    "My favourite thing about autumn is",
    "The main parts of a computer are",
    "A healthy breakfast might include",
    "Dogs make good pets because",
    "The rules of chess say that",
    "To write a good essay, you should",
    "The human heart has four chambers:",
    "When I was a child, my grandmother",
    "Saving money each month is easier if you",
    "Rainbows appear in the sky when",
    "The library opens at nine and",
    "Before a job interview, it helps to",
    "Bees are important to farmers because",
    "A triangle has three sides, and",
    "The story begins on a cold winter night when",
    "To make a cup of tea,",
    "Exercise improves mood because",
    "An email to a colleague should start with",
    "The moon changes shape during the month because",
    "Recycling paper helps the environment by",
    "The train was late again, so",
    "A volcano erupts when",
    "In mathematics, a prime number is",
    "Cats spend much of the day",
    "The teacher asked the students to",
    "Learning to swim is easier when",
    "A strong password should contain",
    "The museum's new exhibition shows",
    "Snow forms in clouds when",
    "The baker wakes up early to",
    "Good teamwork depends on",
    "The first step in solving a problem is",
    "A balanced diet includes",
    "The river flows slowly through the valley, and",
    "Reading before bed can",
    "The city council announced that",
    "To keep houseplants healthy,",
    "Sound travels through air as",
    "The old lighthouse stood on the cliff,",
    "Children learn to read by",
    "A map shows",
    "The doctor recommended that",
    "Electricity reaches our homes through",
    "The football match ended with",
    "Writing a shopping list helps",
    "The artist mixed blue and yellow to",
    "Thunder is the sound of",
    "A polite way to decline an invitation is",
    "Mountains are formed when",
    "The bakery on the corner sells",
    "Plastic in the ocean harms",
    "A computer program is a set of",
    "The wind blew the leaves across",
    "Students often feel nervous before exams because",
    "The farmer checked the weather and",
    "Kindness matters because",
    "A good friend is someone who",
    "The recipe calls for two eggs,",
    "Our solar system has eight planets,",
    "When the power went out,",
    "Musicians practise scales to",
    "The hiking trail climbs through",
    "To fix a leaking tap,",
    "A newspaper article usually answers",
    "The birds flew south for the winter because",
    "Gardeners add compost to the soil to",
    "The meeting was moved to Thursday because",
    "Ice floats on water because",
    "The puppy chased the ball",
    "A thank-you note should mention",
    "The spacecraft sent back pictures of",
    "On rainy days we like to",
]


def main() -> None:
    model, tok = load_model("smollm2-135m-instruct")
    gens = greedy_generate(model, tok, OPENINGS, max_new_tokens=48, batch_size=16)
    rows = []
    for i, (opening, ids) in enumerate(zip(OPENINGS, gens, strict=True)):
        text = (opening + decode_completion(tok, ids)).strip()
        rows.append({"id": f"preserve-{i:03d}", "text": text, "source": "sampled", "opening": opening})
    atomic_write_text(OUT, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"wrote {len(rows)} passages to {OUT}")


if __name__ == "__main__":
    main()
