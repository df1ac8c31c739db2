"""The recipe schema: one dataclass per section, each field documented and its range stated beside it (metadata,
:mod:`xatl.utils.settings`). This file is the single source of truth of
what a recipe may say; :mod:`xatl.experiment.loader` reads YAML into these classes and refuses anything else.

A recipe describes a whole study: the tokenizer, the data, the donor (trained from scratch by the recipe, or a real
one), the shared student training budget, the students (each a mixer x transfer set x freeze schedule x seeds),
evaluation, the decode-cost profile and the report. Every student trains with the same ``train`` budget (steps,
batch, sequence length), so comparisons are at equal tokens and steps by construction, unless a student changes
its own (``StudentSpec.train``: a baseline trained longer, so that the curves cross and the speedup is measured).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..utils.settings import setting

GROUPS = ("main", "heal", "transfer", "hybrid", "freeze", "extra")
"""Report sections a student can belong to: ``main`` (XATL vs scratch per mixer), ``heal`` (students healed with
``xatl heal``, compared with the donor and with the main and baseline students), ``transfer`` (ablations of the
transfer set), ``hybrid`` (students keeping softmax attention layers), ``freeze`` (freeze schedules), ``extra``
(listed in the tables only)."""


@dataclass
class TokenizerSpec:
    """Which tokenizer every model uses."""

    source: str = "train"
    """``train``: a byte-level BPE trained on the recipe's training documents (for a from-scratch donor);
    ``donor``: the real donor's own tokenizer."""
    vocab_size: int = setting(4096, min=260)
    """Vocabulary of a trained tokenizer (specials and the 256 byte symbols included)."""
    max_documents: int | None = setting(None, min=1)
    """Train the tokenizer on at most this many training documents (None: all)."""


@dataclass
class DataSpec:
    """The text every model trains and is validated on (see :class:`xatl.data.DataConfig`)."""

    sources: list[str] = field(default_factory=lambda: ["default"])
    """Corpus names (``wiki``, ``sotu``, ``pydoc``; ``default`` = all three) or paths, mixed in this order."""
    block_size: int = setting(128, min=2)
    """Tokens per training sequence."""
    val_fraction: float = 0.01
    """Fraction of whole documents held out for validation (never trained on)."""
    val_documents: int | None = setting(None, min=1)
    """Hold out exactly this many documents instead of ``val_fraction``."""
    max_documents: int | None = setting(None, min=1)
    """Use only the first N documents of each source (quick runs, tests)."""


@dataclass
class ArchitectureSpec:
    """The Llama-style architecture of a donor trained from scratch (a ``transformers.LlamaConfig``)."""

    hidden_size: int = setting(192, min=1)
    num_hidden_layers: int = setting(4, min=1)
    num_attention_heads: int = setting(6, min=1)
    num_key_value_heads: int | None = setting(None, min=1)
    """None: as many as ``num_attention_heads`` (no grouped-query attention)."""
    intermediate_size: int = setting(512, min=1)
    max_position_embeddings: int = setting(2048, min=2)
    rope_theta: float = setting(10000.0, above=0)
    tie_word_embeddings: bool = True
    initializer_range: float = setting(0.02, above=0)


@dataclass
class TrainSpec:
    """A training budget and optimiser settings (the fields of :class:`xatl.train.TrainConfig` a recipe sets)."""

    max_steps: int = setting(100, min=1)
    """Optimizer steps. Tokens = max_steps * micro_batch_size * grad_accum * data.block_size."""
    micro_batch_size: int = setting(16, min=1)
    """Sequences per forward pass."""
    grad_accum: int = setting(1, min=1)
    """Forward passes per optimizer step."""
    lr: float = setting(3e-3, above=0)
    """Peak learning rate (AdamW, cosine decay after warm-up)."""
    warmup_steps: int = setting(10, min=0)
    """Linear learning-rate warm-up steps."""
    eval_every: int = setting(10, min=1)
    """Steps between validation-loss evaluations (the points of the loss curves and of the speedup)."""
    eval_batches: int = setting(8, min=1)
    """Validation batches per evaluation (the same batches every time)."""
    options: dict = field(default_factory=dict)
    """Further :class:`xatl.train.TrainConfig` fields, passed as they are (checked by the trainer)."""


@dataclass
class DonorSpec:
    """The donor: a Transformer trained from scratch by the recipe, or a real pretrained one."""

    source: str = "scratch"
    """``scratch`` (train ``architecture`` with ``train`` on the recipe's data), or a model directory, ``.gguf``
    file or fetched asset name (e.g. ``smollm2-135m``)."""
    architecture: ArchitectureSpec = field(default_factory=ArchitectureSpec)
    """Architecture of a from-scratch donor (ignored for a real donor)."""
    train: TrainSpec = field(default_factory=lambda: TrainSpec(max_steps=600, lr=3e-3, warmup_steps=30,
                                                               eval_every=100))
    """Training budget of a from-scratch donor (ignored for a real donor)."""


@dataclass
class StudentSpec:
    """One kind of student, trained once per mixer and seed with the recipe's shared ``train`` budget."""

    name: str
    """Short name (letters, digits, ``-``, ``_``); a run is ``<mixer>-<name>-s<seed>``."""
    mixers: list[str]
    """Token mixers to build this student with (``xatl.MIXERS``)."""
    copy: str = "default"
    """Donor components copied into the student (``xatl convert --copy``): ``default`` (all shared but Q/K/V),
    ``none`` (a from-scratch student of the same architecture), or a comma list of embed, norms, mlp, lm_head,
    o_proj, qkv."""
    attention_layers: list[int] = field(default_factory=list)
    """Layers that keep the donor's softmax attention (a hybrid)."""
    mixer_options: dict = field(default_factory=dict)
    """Options of the mixer (e.g. ``{chunk_size: 64}``); validated by each mixer."""
    freeze: bool = True
    """Freeze the copied weights at the start (the paper's recipe); ignored when nothing is copied."""
    unfreeze: str = "never"
    """When frozen weights join training: ``never``, ``step:N`` or ``lit:threshold=T,patience=P`` (the paper's
    Loss Improvement Threshold)."""
    lr: float | None = setting(None, above=0)
    """Peak learning rate of this student (None: ``train.lr``). Steps and batch are shared by every student."""
    lr_sweep: list[float] = field(default_factory=list)
    """Peak learning rates tried, at the first seed, in a sweep stage before the main runs; every seed then trains
    at the one with the lowest final validation loss (the sweep and its curves are in the report: baselines are
    tuned in the open). Empty: no sweep, ``lr``."""
    train: dict = field(default_factory=dict)
    """This student's changes to the recipe's ``train`` budget (TrainSpec fields but ``lr``), e.g.
    ``{max_steps: 700, eval_every: 25}``: a from-scratch baseline trained several times longer than XATL, so that
    the curves cross and the speedup is measured rather than bounded. ``options`` merge into the recipe's."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """One run per seed (initialisation of fresh weights and data order)."""
    group: str = "main"
    """Report section: main, transfer, hybrid, freeze or extra."""
    label: str | None = None
    """How the report names this student (None: ``name``)."""
    heal: dict | None = None
    """Heal this student with :func:`xatl.heal.heal` (attention transfer, then distillation + LM loss with LoRA)
    instead of training it with the plain recipe: a mapping of :class:`xatl.heal.HealConfig` fields (``{}``: its
    defaults), e.g. ``{align_fraction: 0.5, lr: 1.0e-3}``. Its budget is the recipe's ``train`` steps, batch and
    block (the same tokens as every other student); ``copy`` is ``all`` and ``freeze``, ``unfreeze`` and ``lr`` are
    the heal's own, so they may not be set. None: the plain recipe."""


@dataclass
class EvalSpec:
    """Evaluation of the donor and every student after training (:func:`xatl.eval.evaluate`)."""

    tasks: list[str] = field(default_factory=lambda: ["ppl", "piqa", "arc_easy", "hellaswag"])
    """Tasks of the suite: ppl (held-out perplexity), lambada, hellaswag, piqa, arc_easy, arc_challenge,
    winogrande."""
    limit: int | None = setting(200, min=1)
    """The first N documents of each zero-shot task (None: all)."""
    ppl_documents: int | None = setting(60, min=1)
    """Held-out validation documents scored for ppl (None: all)."""
    suite_students: list[str] | None = None
    """Students (by name) scored on the zero-shot tasks; the others get ``ppl`` only (None: every student; the
    donor always is). Zero-shot scoring dominates evaluation time on a CPU."""
    ppl_window: int | None = setting(None, min=2)
    """Tokens per held-out window (None: ``data.block_size``, the context the students were trained at)."""
    batch_size: int = setting(16, min=1)


@dataclass
class LongContextSpec:
    """Long-context evaluation of the donor and the students (:mod:`xatl.eval.long`): perplexity by token position
    on long held-out documents, and the retrieval tasks (passkey, needles, associative recall), each model relative
    to the donor. Off by default: it takes minutes per model."""

    enabled: bool = False
    """Run the ``long/<model>`` stages and the report's Long context section."""
    tasks: list[str] = field(default_factory=lambda: ["ppl_position", "passkey"])
    """Long-context tasks: ppl_position, passkey, niah, mqar."""
    students: list[str] | None = None
    """Students (by name, first seed) scored on ``ppl_position`` (None: every student; the donor always is)."""
    retrieval_students: list[str] | None = None
    """Students scored on the retrieval tasks (passkey, niah, mqar), which cost a generation per prompt (None: as
    ``students``; the donor always is)."""
    settings: dict = field(default_factory=dict)
    """Fields of :class:`xatl.eval.long.LongContextConfig` (max_length, lengths, depths, samples, documents, ...);
    the ones not given keep its defaults."""

    def config(self):
        """The :class:`~xatl.eval.long.LongContextConfig` of ``settings``."""
        from ..eval.long.config import LongContextConfig

        return LongContextConfig(**self.settings)


@dataclass
class ProfileSpec:
    """Decode cost of the donor and of each mixer's main student (:mod:`xatl.eval.profile`)."""

    enabled: bool = True
    contexts: list[int] = field(default_factory=lambda: [128, 512, 2048])
    """Context lengths at which decoding is timed."""
    decode_steps: int = setting(8, min=1)
    warmup_steps: int = setting(2, min=0)
    prefill_chunk: int = setting(512, min=1)


@dataclass
class PromptSpec:
    """The same prompts continued greedily by the donor and by the first seed of every student (side by side in
    the report, with each model's decode speed)."""

    enabled: bool = True
    texts: list[str] = field(default_factory=lambda: [
        "The capital of France is", "Water boils at a temperature of", "The first President of the United States",
        "In Python, a list comprehension", "Photosynthesis is the process by which"])
    max_new_tokens: int = setting(20, min=1)


@dataclass
class ReportSpec:
    """What the report compares."""

    main: str = "xatl"
    """The student that stands for XATL in the headline comparison."""
    baseline: str = "scratch"
    """The from-scratch student every other student is compared with (same mixer, same seed)."""
    target_speedup: float = setting(2.5, min=1.0)
    """The speedup the headline comparison is held against (the paper's 2.5x)."""


@dataclass
class Recipe:
    """A whole study (``xatl run RECIPE``)."""

    name: str
    """Name of the study; outputs go to ``<out>/<name>/``."""
    students: list[StudentSpec]
    description: str = ""
    device: str = "auto"
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1``..."""
    seed: int = 0
    """Seed of the tokenizer, the data split and the donor."""
    tokenizer: TokenizerSpec = field(default_factory=TokenizerSpec)
    data: DataSpec = field(default_factory=DataSpec)
    donor: DonorSpec = field(default_factory=DonorSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    """The budget every student trains with (equal tokens and steps)."""
    eval: EvalSpec = field(default_factory=EvalSpec)
    long_context: LongContextSpec = field(default_factory=LongContextSpec)
    """Long-context evaluation of the donor and the students (off unless ``enabled``)."""
    profile: ProfileSpec = field(default_factory=ProfileSpec)
    prompts: PromptSpec = field(default_factory=PromptSpec)
    report: ReportSpec = field(default_factory=ReportSpec)
    presets: dict = field(default_factory=dict)
    """Named partial recipes applied on request (``xatl run RECIPE --preset NAME``), e.g. a CPU-sized budget."""

    def student(self, name: str) -> StudentSpec | None:
        return next((s for s in self.students if s.name == name), None)

    def runs(self) -> list[StudentRun]:
        """Every student run, in the order of ``students``, then mixers, then seeds."""
        return [StudentRun(s, m, seed) for s in self.students for m in s.mixers for seed in s.seeds]

    def sweep_runs(self) -> list[StudentRun]:
        """The learning-rate sweep: one run per swept student, mixer and learning rate, at the student's first seed."""
        return [StudentRun(s, m, s.seeds[0], lr=lr) for s in self.students for m in s.mixers for lr in s.lr_sweep]

    def train_changes(self, spec: StudentSpec) -> dict:
        """The student's changes to ``train`` as TrainSpec fields, its ``options`` merged into the recipe's."""
        if not spec.train:
            return {}
        return {**spec.train, "options": {**self.train.options, **(spec.train.get("options") or {})}}

    def train_of(self, spec: StudentSpec) -> TrainSpec:
        """The budget ``spec`` trains with: the recipe's ``train`` with the student's own changes."""
        changes = self.train_changes(spec)
        return dataclasses.replace(self.train, **changes) if changes else self.train


@dataclass
class StudentRun:
    """One trained student: a spec with one mixer and one seed."""

    spec: StudentSpec
    mixer: str
    seed: int
    lr: float | None = None
    """Set for a run of the learning-rate sweep (its id then names the rate)."""

    @property
    def id(self) -> str:
        rate = f"-lr{self.lr:g}" if self.lr is not None else ""
        return f"{self.mixer}-{self.spec.name}{rate}-s{self.seed}"

    @property
    def stage(self) -> str:
        """The study stage (and directory under the run) that trains it: ``sweep/<id>`` or ``students/<id>``."""
        return f"{'sweep' if self.lr is not None else 'students'}/{self.id}"

    @property
    def label(self) -> str:
        return self.spec.label or self.spec.name

    @property
    def healed(self) -> bool:
        return self.spec.heal is not None

    @property
    def train_subdir(self) -> str:
        """Where the training run (metrics.jsonl, final/) lives under the run's stage directory."""
        return "heal/train" if self.healed else "train"
