"""Distillation's teacher runs once per distinct student image (MemoisedTeacher), and the planner
counts that: exact row counts, the same logits as the plain teacher, a bounded memory."""

import torch
from torch import nn

from ferbench.training import fit, seed_everything, teacher_forward
from ferbench.training.augment import Augmenter
from ferbench.training.teacher import MemoisedTeacher

from test_training import CPU, TinyCNN, left_right_images, make_card


class RowCounter(nn.Module):
    """A linear teacher on the flattened image that counts the rows it is run on."""

    def __init__(self, pixels: int, classes: int = 2):
        super().__init__()
        self.linear = nn.Linear(pixels, classes)
        self.rows = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.rows += len(x)
        return self.linear(x.flatten(1))


def test_each_distinct_row_is_computed_once_and_answers_as_the_teacher():
    torch.manual_seed(0)
    teacher = RowCounter(2 * 3 * 3)
    memo = MemoisedTeacher(teacher)
    a, b, c = torch.randn(3, 2, 3, 3)
    with torch.no_grad():
        first = memo(torch.stack([a, b, a]))  # a twice in one batch: computed once
        second = memo(torch.stack([c, b, a, c]))  # only c is new
        direct = teacher.linear(torch.stack([c, b, a, c]).flatten(1))
    assert teacher.rows == 3 and (memo.computed, memo.seen) == (3, 7)
    assert torch.allclose(second, direct, atol=1e-6) and torch.equal(first[0], first[2])
    assert torch.equal(second[2], first[0])  # a's logits are the ones first computed


def test_a_full_memory_still_answers_every_row():
    teacher = RowCounter(4)
    memo = MemoisedTeacher(teacher, max_entries=1)
    x = torch.arange(12.0).view(3, 1, 2, 2)
    with torch.no_grad():
        once, again = memo(x), memo(x)
    assert torch.equal(once, again) and len(memo.logits) == 1
    assert teacher.rows == 3 + 2  # the second call recomputes the two rows that found no room


def test_views_per_image_multiplies_the_discrete_steps():
    crops = {"name": "fixed_crops", "offsets": [[0, 0], [0, 4], [4, 0]], "crop": 12, "from": 16}
    views = lambda *steps: Augmenter(list(make_card(augment=list(steps)).recipe.augment), "none",  # noqa: E731
                                     (12, 12)).views_per_image
    assert views() == 1
    assert views(crops) == 3
    assert views(crops, {"name": "hflip"}) == 6
    assert views(crops, {"name": "shift", "fraction": 0.1}) is None  # a continuous draw: unbounded


def test_a_fixed_crop_student_runs_its_teacher_once_per_image_and_view():
    crops = {"name": "fixed_crops", "offsets": [[0, 0], [0, 4], [4, 0], [4, 4]], "crop": 12, "from": 16}
    student = make_card(input_size=(12, 12), epochs=6, batch_size=4, augment=[crops],
                        objective={"name": "distillation", "lambda": 0.5, "temperature": 4, "teacher": "big"})
    images, labels = left_right_images(10)
    teacher = RowCounter(12 * 12)
    memoised = teacher_forward(teacher, make_card(input_size=(12, 12)), student)
    seed_everything(0)
    fit(TinyCNN(num_classes=2), student, images, labels, CPU, 0, teacher=memoised, progress=False)
    assert memoised.seen == 6 * 10  # every image pass asked for teacher logits ...
    assert teacher.rows == memoised.computed == len(memoised.logits) <= 10 * 4  # ... at most 40 distinct views
