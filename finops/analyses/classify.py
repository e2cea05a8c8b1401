"""First-pass workload classification: is a charge inference, training, development, other AI, or not AI?

The CFO's first questions about AI spend are how much of it serves users (inference) and how
much builds models (training). Cloud bills do not say so directly, but the usage type, SKU or
meter usually does: a SageMaker ``USE1-Host:ml.g5.2xlarge`` line is a real-time endpoint, a
Vertex AI ``Custom Training …`` SKU is a training job. This module turns those patterns into
:data:`RULES`, an ordered list of data: the first rule that matches a charge names its
``workload`` and is recorded in ``workload_rule``, so every number in a report can be traced
to the rule that put it there, and a wrong call is fixed by editing one rule.

Rules look at the provider and service names, the text that carries a usage type (SkuId,
SkuMeter, ChargeDescription, ResourceType, SkuPriceDetails and the native x_UsageType,
x_Operation and x_InstanceType, matched together because
exports put it in different places), ServiceCategory, and the tag keys. Patterns are
case-insensitive regular expressions written without backslashes, so the same expression
runs on DuckDB (RE2) and Spark (Java regex).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import ibis
import ibis.expr.types as ir
import polars as pl

if TYPE_CHECKING:
    from finops.config import Config, WorkloadRuleSpec

Workload = Literal["inference", "training", "development", "other AI", "non-AI"]
WORKLOADS: tuple[Workload, ...] = ("inference", "training", "development", "other AI", "non-AI")
AI_WORKLOADS: tuple[Workload, ...] = tuple(w for w in WORKLOADS if w != "non-AI")
NON_AI: Workload = "non-AI"

# Text that is not a letter or digit: the edge of a usage-type token such as "Host" in
# "USE1-Host:ml.g5.2xlarge". Under (?i) the class excludes upper case letters too.
_EDGE_BEFORE = "(^|[^a-z0-9])"
_EDGE_AFTER = "([^a-z0-9]|$)"


@dataclasses.dataclass(frozen=True)
class RuleInputs:
    """The columns a rule may look at, as ibis expressions (text ones never NULL)."""

    provider: ir.StringValue  # ProviderName
    service: ir.StringValue  # ServiceName
    usage: ir.StringValue  # SkuId | SkuMeter | ChargeDescription | ResourceType | SkuPriceDetails | x_UsageType | …
    category: ir.StringValue  # ServiceCategory
    tag_keys: ir.ArrayValue  # lower-cased keys of Tags (NULL when a row has no tags)
    workload_tag: ir.StringValue  # the value of a workload tag (see WORKLOAD_TAG_KEYS), else empty
    sku: ir.StringValue  # SkuId | SkuMeter (user rules' ``sku``)
    resource: ir.StringValue  # ResourceId | ResourceName (user rules' ``resource``)
    tags: ir.MapValue  # Tags as loaded (NULL when a row has no tags)

    def provider_is(self, pattern: str) -> ir.BooleanValue:
        return _search(self.provider, pattern)

    def service_is(self, pattern: str) -> ir.BooleanValue:
        return _search(self.service, pattern)

    def usage_has(self, pattern: str) -> ir.BooleanValue:
        return _search(self.usage, pattern)

    def usage_token(self, pattern: str) -> ir.BooleanValue:
        """``pattern`` as a whole token of the usage text (not part of a longer word)."""
        return _search(self.usage, f"{_EDGE_BEFORE}({pattern}){_EDGE_AFTER}")

    def has_tag_key(self, *keys: str) -> ir.BooleanValue:
        return ibis.or_(*(self.tag_keys.contains(key.lower()).fill_null(False) for key in keys))

    def tag_matches(self, key: str, pattern: str) -> ir.BooleanValue:
        """A tag whose key is ``key`` in any case has a value matching ``pattern``."""
        entries = self.tags.keys().zip(self.tags.values())
        hits = entries.filter(lambda e: (e.f1.lower() == key.lower()) & _search(e.f2.fill_null(""), pattern))
        return (hits.length() > 0).fill_null(False)

    def workload_tagged(self, pattern: str) -> ir.BooleanValue:
        """The resource's workload tag (e.g. ``workload: inference``) matches ``pattern``."""
        return _search(self.workload_tag, f"^ *({pattern}) *$")


Predicate = Callable[[RuleInputs], ir.BooleanValue]


@dataclasses.dataclass(frozen=True)
class Rule:
    """One classification rule: charges matching ``when`` are ``workload``; recorded as ``id``."""

    id: str
    workload: Workload
    description: str
    when: Predicate


def _search(value: ir.StringValue, pattern: str) -> ir.BooleanValue:
    return value.re_search(f"(?i){pattern}")


# Services, matched on ServiceName (several spellings: FOCUS names, CUR product codes, old names).
_SAGEMAKER = "sagemaker"
_BEDROCK = "bedrock"
_EC2 = "elastic compute cloud|amazonec2|(^|[^a-z0-9])ec2([^a-z0-9]|$)"
_VERTEX = "vertex|ai platform|machine learning engine|generative language|gemini|(^|[^a-z])notebooks([^a-z]|$)"
_GCP_COMPUTE = "compute engine|cloud tpu"
_AZURE = "microsoft|azure"
_AZURE_OPENAI = "openai|cognitive services|ai services|foundry"
_AZURE_ML = "machine learning"
_LLM_API_PROVIDERS = "^(openai|anthropic)"

_FINE_TUNING = "fine[- _]?tun|customization"
_EC2_GPU_FAMILIES = "p[2-9][a-z0-9-]*|gr?[3-9][a-z0-9]*"  # p4d, p5e, g5, g6e, gr6 …

WORKLOAD_TAG_KEYS = ("workload", "Workload", "ai-workload", "ai_workload", "ml-workload")
"""Tag keys whose value says what a GPU or accelerator instance does (inference, training, dev)."""


def _accelerator_instance(f: RuleInputs) -> ir.BooleanValue:
    """EC2 GPU / Inferentia / Trainium instances and Compute Engine GPUs and TPUs: the bill
    says an accelerator ran, not whether it served users or trained a model."""
    ec2 = f.service_is(_EC2) & f.usage_has(f"{_EDGE_BEFORE}({_EC2_GPU_FAMILIES}|inf[12][a-z]*|trn[12][a-z]*)[.]")
    return ec2 | (f.service_is(_GCP_COMPUTE) & f.usage_has("gpu|nvidia|tpu"))

RULES: list[Rule] = [
    # --- AWS SageMaker: the usage type names the job. Longer tokens before shorter ones.
    Rule("aws.sagemaker.train-warm-pool", "training", "SageMaker training warm pools (TrainWarmPool)",
         lambda f: f.service_is(_SAGEMAKER) & f.usage_token("TrainWarmPool|warm[- ]?pool")),
    Rule("aws.sagemaker.spot-training", "training", "SageMaker managed spot training (TrSpt)",
         lambda f: f.service_is(_SAGEMAKER) & f.usage_token("TrSpt")),
    Rule("aws.sagemaker.training", "training", "SageMaker training jobs (Train)",
         lambda f: f.service_is(_SAGEMAKER) & f.usage_token("Train|Training")),
    Rule("aws.sagemaker.hyperpod", "training", "SageMaker HyperPod clusters (Cluster)",
         lambda f: f.service_is(_SAGEMAKER) & f.usage_token("Cluster|HyperPod")),
    Rule("aws.sagemaker.async-inference", "inference", "SageMaker asynchronous inference endpoints (AsyncInf)",
         lambda f: f.service_is(_SAGEMAKER) & f.usage_token("AsyncInf|async(hronous)? inference")),
    Rule("aws.sagemaker.hosting", "inference", "SageMaker real-time endpoints (Host)",
         lambda f: f.service_is(_SAGEMAKER) & f.usage_token("Host|Hosting|real-time inference|serverless inference")),
    Rule("aws.sagemaker.batch-transform", "inference", "SageMaker batch transform (Tsform)",
         lambda f: f.service_is(_SAGEMAKER) & f.usage_token("Tsform|batch transform")),
    Rule("aws.sagemaker.studio", "development", "SageMaker Studio apps (Studio)",
         lambda f: f.service_is(_SAGEMAKER) & f.usage_token("Studio[a-z]*")),
    Rule("aws.sagemaker.notebook", "development", "SageMaker notebook instances (Notebk)",
         lambda f: f.service_is(_SAGEMAKER) & f.usage_token("Notebk|notebooks?")),
    Rule("aws.sagemaker.processing", "other AI", "SageMaker processing jobs (Processing)",
         lambda f: f.service_is(_SAGEMAKER) & f.usage_token("Processing")),
    Rule("aws.sagemaker.other", "other AI", "other SageMaker usage (storage, data transfer, features)",
         lambda f: f.service_is(_SAGEMAKER)),
    # --- AWS Bedrock
    Rule("aws.bedrock.provisioned", "inference", "Bedrock provisioned throughput (ModelUnits)",
         lambda f: f.service_is(_BEDROCK) & f.usage_has("ModelUnits|model[- ]units|provisioned")),
    Rule("aws.bedrock.customization", "training",
         "Bedrock model customization (fine-tuning, training, custom model storage)",
         lambda f: f.service_is(_BEDROCK) & (f.usage_has(_FINE_TUNING) | f.usage_token("train|training"))),
    Rule("aws.bedrock.invocation", "inference", "Bedrock model invocations (input/output tokens, batch, cache, images)",
         lambda f: f.service_is(_BEDROCK)
         & f.usage_has("tokens?|images?|invocations?|characters|search[- ]?units|text[- ]?units")),
    Rule("aws.bedrock.other", "other AI", "other Bedrock usage",
         lambda f: f.service_is(_BEDROCK)),
    # --- Accelerator instances whose owners tagged the workload: the tag knows better than the SKU.
    Rule("tag.workload.inference", "inference", "accelerator instances tagged workload=inference|serving",
         lambda f: _accelerator_instance(f) & f.workload_tagged("inference|serving|prod-inference")),
    Rule("tag.workload.training", "training", "accelerator instances tagged workload=training",
         lambda f: _accelerator_instance(f) & f.workload_tagged("training|train|fine-?tuning")),
    Rule("tag.workload.development", "development", "accelerator instances tagged workload=development|dev|notebook",
         lambda f: _accelerator_instance(f) & f.workload_tagged("development|dev|notebooks?|experiment(s|ation)?")),
    # --- AWS EC2 accelerated instances (instance type in the usage type or description)
    Rule("aws.ec2.inferentia", "inference", "EC2 Inferentia instances (inf1, inf2)",
         lambda f: f.service_is(_EC2) & f.usage_has(f"{_EDGE_BEFORE}inf[12][a-z]*[.]")),
    Rule("aws.ec2.trainium", "training", "EC2 Trainium instances (trn1, trn2)",
         lambda f: f.service_is(_EC2) & f.usage_has(f"{_EDGE_BEFORE}trn[12][a-z]*[.]")),
    Rule("aws.ec2.gpu", "other AI", "EC2 GPU instances (p*, g* families): AI work of unknown kind",
         lambda f: f.service_is(_EC2) & f.usage_has(f"{_EDGE_BEFORE}({_EC2_GPU_FAMILIES})[.]")),
    # --- Google Cloud Vertex AI (and the Gemini API): the SKU description names the job
    Rule("gcp.vertex.training", "training", "Vertex AI training, custom training, pipelines and tuning",
         lambda f: f.service_is(_VERTEX) & f.usage_has("training|pipelines?|tuning|" + _FINE_TUNING)),
    Rule("gcp.vertex.prediction", "inference",
         "Vertex AI online/batch prediction, Gemini/PaLM input/output tokens, Gemini API credits",
         lambda f: f.service_is(_VERTEX)
         & f.usage_has("predictions?|tokens?|characters|gemini api|(gemini|palm|imagen|claude|llama|codey|chirp).*(input|output)")),
    Rule("gcp.vertex.workbench", "development", "Vertex AI Workbench, notebooks and Colab Enterprise",
         lambda f: f.service_is(_VERTEX)
         & (f.usage_has("workbench|notebooks?|colab") | f.service_is("workbench|notebooks|colab"))),
    Rule("gcp.vertex.other", "other AI", "other Vertex AI usage (vector search, feature store, …)",
         lambda f: f.service_is(_VERTEX)),
    Rule("gcp.compute.accelerator", "other AI", "Compute Engine GPUs and Cloud TPUs: AI work of unknown kind",
         lambda f: f.service_is(_GCP_COMPUTE) & f.usage_has("gpu|nvidia|tpu")),
    # --- Azure OpenAI / AI Foundry and Azure Machine Learning
    Rule("azure.openai.fine-tuning", "training", "Azure OpenAI fine-tuning (training meters)",
         lambda f: f.provider_is(_AZURE) & f.service_is(_AZURE_OPENAI) & f.usage_has("training|" + _FINE_TUNING)),
    Rule("azure.openai.tokens", "inference",
         "Azure OpenAI / AI Foundry token meters (e.g. 'gpt 4o 0513 Input global Tokens')",
         lambda f: f.provider_is(_AZURE) & f.usage_token("tokens?")),
    Rule("azure.openai.provisioned", "inference", "Azure OpenAI provisioned throughput and fine-tuned model hosting",
         lambda f: f.provider_is(_AZURE) & f.service_is(_AZURE_OPENAI) & f.usage_has("provisioned|ptu|hosting")),
    Rule("azure.ml.endpoint", "inference", "Azure ML online endpoints (tags azuremlendpoint / azuremldeployment)",
         lambda f: f.provider_is(_AZURE) & f.service_is(_AZURE_ML)
         & f.has_tag_key("azuremlendpoint", "azuremldeployment")),
    Rule("azure.ml.compute", "training", "Azure ML compute without endpoint tags: training and batch jobs",
         lambda f: f.provider_is(_AZURE) & f.service_is(_AZURE_ML)),
    # --- Model API providers billed directly
    Rule("api.fine-tuning", "training", "OpenAI / Anthropic fine-tuning",
         lambda f: f.provider_is(_LLM_API_PROVIDERS) & f.usage_has("training|" + _FINE_TUNING)),
    Rule("api.llm-provider", "inference", "OpenAI / Anthropic API usage",
         lambda f: f.provider_is(_LLM_API_PROVIDERS)),
    # --- Fallbacks
    Rule("fallback.ai-category", "other AI", "anything else in ServiceCategory 'AI and Machine Learning'",
         lambda f: _search(f.category, "^ *ai and machine learning *$")),
    Rule("fallback.non-ai", "non-AI", "everything else", lambda f: ibis.literal(True)),
]  # fmt: skip
"""Classification rules, in the order they are tried; the first match wins."""


def _rule_inputs(charges: ibis.Table) -> ibis.Table:
    """``charges`` plus the columns rules read (prefixed ``_rule_``; NULL text as empty text)."""
    usage_parts = [
        charges.SkuId,
        charges.SkuMeter,
        charges.ChargeDescription,
        charges.ResourceType,
        charges.SkuPriceDetails,
        charges.x_UsageType,
        charges.x_Operation,
        charges.x_InstanceType,
    ]
    tag_keys = charges.Tags.keys().map(lambda key: key.lower())
    # The daily rollup has no resource; it is read only when no rule matches on one (tables.py).
    resource = (
        ibis.literal(" | ").join([charges.ResourceId.fill_null(""), charges.ResourceName.fill_null("")])
        if "ResourceId" in charges.columns
        else ibis.literal("")
    )
    return charges.mutate(
        _rule_provider=charges.ProviderName.fill_null(""),
        _rule_service=charges.ServiceName.fill_null(""),
        _rule_usage=ibis.literal(" | ").join([part.fill_null("") for part in usage_parts]),
        _rule_category=charges.ServiceCategory.fill_null(""),
        _rule_tag_keys=tag_keys,
        # The keys as one text, never NULL, told apart from no tags: a join key (see classify).
        _rule_tag_keys_text=tag_keys.map(lambda key: "\x1f" + key).join("").fill_null("\x1e"),
        _rule_workload_tag=ibis.coalesce(*(charges.Tags.get(key) for key in WORKLOAD_TAG_KEYS), ibis.literal("")),
        _rule_sku=ibis.literal(" | ").join([charges.SkuId.fill_null(""), charges.SkuMeter.fill_null("")]),
        _rule_resource=resource,
    )


def classify(charges: ibis.Table, rules: list[Rule] | None = None) -> ibis.Table:
    """Add ``workload`` and ``workload_rule`` to a table of FOCUS charges.

    Parameters
    ----------
    charges
        An ibis table with the FOCUS columns of ``charges`` (any backend).
    rules
        Rules to apply in order, first match wins; :data:`RULES` by default. The last
        rule should match everything, or unmatched rows get NULL.

    Returns
    -------
    ibis.Table
        ``charges`` with ``workload`` (one of :data:`WORKLOADS`) and ``workload_rule`` (the
        id of the rule that decided it).

    Why
    ---
    Inference versus training is the split a CFO asks about first; keeping the rule id
    beside the answer lets an analyst audit it and fix the rule, not the number.
    """
    rules = RULES if rules is None else rules
    staged, inputs = rule_inputs(charges)
    read = _fields_read(rules, inputs)
    if not read or "tags" in read:  # a map cannot be a DISTINCT or join key on every engine
        return drop_rule_inputs(staged.mutate(**_decide(rules, inputs)))
    # The rules' dozens of regular expressions run once per distinct combination of what they
    # read (tens of thousands), not once per line item (millions), and the answer is joined back.
    keys = [f"_rule_{name}" if name != "tag_keys" else "_rule_tag_keys_text" for name in sorted(read)]
    carried = {"_rule_tag_keys": staged._rule_tag_keys} if "tag_keys" in read else {}

    def decided(combos: ibis.Table) -> dict[str, ir.StringValue]:
        fields = dataclasses.fields(RuleInputs)
        values = {f.name: combos[f"_rule_{f.name}"] if f.name in read else None for f in fields}
        return _decide(rules, RuleInputs(**values))

    return drop_rule_inputs(
        decide_per_distinct(
            staged,
            {key: staged[key] for key in keys},
            carried=carried,
            workload=lambda combos: decided(combos)["workload"],
            workload_rule=lambda combos: decided(combos)["workload_rule"],
        )
    )


def decide_per_distinct(
    t: ibis.Table,
    keys: dict[str, ir.Value],
    *,
    carried: dict[str, ir.Value] | None = None,
    **decisions: Callable[[ibis.Table], ir.Value],
) -> ibis.Table:
    """``t`` plus a column per decision, each computed once per distinct ``keys`` and joined back.

    ``keys`` are named expressions over ``t`` (never NULL: a NULL key would not join back);
    each decision is a function of the table of distinct keys. ``carried`` are expressions the
    keys determine (an array whose text is a key): decisions can read them, but they are not
    joined on, as arrays and maps are not join keys on every engine. Why: a lookup of dozens of
    CASE branches, regular expressions and string functions costs microseconds per row, and
    millions of line items have only tens or hundreds of owners or rule inputs.
    """
    carried = carried or {}
    keyed = t.mutate(**keys, **carried)
    distinct = keyed.group_by(*keys, *carried).aggregate(_distinct_rows=keyed.count())
    # ``_distinct_rows > 0`` always holds: the answer depends on the grouping, so an optimizer cannot
    # push a filter on it below the grouping (DuckDB does), which would decide per row again.
    decided = distinct.select(
        *keys,
        **{name: ibis.cases((distinct._distinct_rows > 0, decide(distinct))) for name, decide in decisions.items()},
    )
    return keyed.inner_join(decided, list(keys)).drop(*keys, *carried)


def _decide(rules: list[Rule], inputs: RuleInputs) -> dict[str, ir.StringValue]:
    """``workload`` and ``workload_rule``: the first rule whose predicate holds."""
    conditions = [rule.when(inputs) for rule in rules]
    # Two parallel CASEs rather than one CASE for a rule index looked up twice: DuckDB inlines
    # expressions, and a lookup over an inlined CASE evaluates it once per lookup branch.
    return {
        "workload": ibis.cases(*((cond, rule.workload) for cond, rule in zip(conditions, rules, strict=True))),
        "workload_rule": ibis.cases(*((cond, rule.id) for cond, rule in zip(conditions, rules, strict=True))),
    }


def _fields_read(rules: list[Rule], inputs: RuleInputs) -> set[str]:
    """The :class:`RuleInputs` fields the rules' predicates read (found by building them once)."""
    read: set[str] = set()
    fields = {f.name for f in dataclasses.fields(RuleInputs)}

    class Recording(RuleInputs):
        def __getattribute__(self, name: str):
            if name in fields:
                read.add(name)
            return super().__getattribute__(name)

    probe = Recording(**{name: getattr(inputs, name) for name in fields})
    for rule in rules:
        rule.when(probe)
    return read


def rule_inputs(charges: ibis.Table) -> tuple[ibis.Table, RuleInputs]:
    """``charges`` staged with the columns rules read, and those columns as :class:`RuleInputs`.

    Build predicates over the staged table, then :func:`drop_rule_inputs` (chargeback matches
    its pools and allocation rules with the same inputs the classification rules see).
    """
    staged = _rule_inputs(charges)
    inputs = RuleInputs(
        provider=staged._rule_provider,
        service=staged._rule_service,
        usage=staged._rule_usage,
        category=staged._rule_category,
        tag_keys=staged._rule_tag_keys,
        workload_tag=staged._rule_workload_tag,
        sku=staged._rule_sku,
        resource=staged._rule_resource,
        tags=staged.Tags,
    )
    return staged, inputs


def drop_rule_inputs(staged: ibis.Table) -> ibis.Table:
    return staged.drop(*(c for c in staged.columns if c.startswith("_rule_")))


def accelerator_instance(f: RuleInputs) -> ir.BooleanValue:
    """GPU, Inferentia/Trainium and TPU instances (see :func:`_accelerator_instance`)."""
    return _accelerator_instance(f)


def search(value: ir.StringValue, pattern: str) -> ir.BooleanValue:
    """``pattern`` (a regular expression) found anywhere in ``value``, in any case."""
    return _search(value, pattern)


USER_RULE_PREFIX = "user."
"""Prefix of the ``workload_rule`` id of a rule from finops.toml, so reports tell them apart."""


def _user_predicate(spec: WorkloadRuleSpec) -> Predicate:
    """The predicate of one finops.toml rule: every key it sets must match (AND)."""

    def when(f: RuleInputs) -> ir.BooleanValue:
        text_keys = (
            (f.provider, spec.provider),
            (f.service, spec.service),
            (f.sku, spec.sku),
            (f.usage, spec.usage_type),
            (f.resource, spec.resource),
        )
        parts = [_search(value, pattern) for value, pattern in text_keys if pattern is not None]
        parts += [f.tag_matches(key, pattern) for key, pattern in spec.tags]
        return ibis.and_(*parts)

    return when


def rules_from_config(config: Config | None) -> list[Rule]:
    r"""The ``[[workload_rules]]`` of finops.toml as :class:`Rule` objects, in file order.

    Callers put them before :data:`RULES` (``rules_from_config(config) + RULES``) so a user
    rule overrides a default: the first match wins. Ids get the ``user.`` prefix.

    Match keys and the text each searches (case-insensitive, anywhere in the text):
    ``provider`` ProviderName; ``service`` ServiceName; ``sku`` SkuId and SkuMeter;
    ``usage_type`` the usage text the default rules read (SkuId, SkuMeter, ChargeDescription,
    ResourceType, SkuPriceDetails, x_UsageType, x_Operation, x_InstanceType); ``resource``
    ResourceId and ResourceName; ``tags`` a tag key (any case) whose value matches.

    >>> from finops.config import parse_config
    >>> config = parse_config("\n".join(["[[workload_rules]]", 'id = "gpu"', 'workload = "inference"',
    ...                                   'resource = "gpu-cluster"']))
    >>> [(r.id, r.workload) for r in rules_from_config(config)]
    [('user.gpu', 'inference')]
    """
    if config is None:
        return []
    return [
        Rule(USER_RULE_PREFIX + spec.id, spec.workload, spec.description or f"finops.toml rule {spec.id}",  # type: ignore[arg-type]
             _user_predicate(spec))
        for spec in config.workload_rules
    ]  # fmt: skip


def rules_for(config: Config | None) -> list[Rule]:
    """The rules to classify with under ``config``: its user rules, then :data:`RULES`."""
    return rules_from_config(config) + RULES


FALLBACK_RULE_IDS = ("aws.ec2.gpu", "gcp.compute.accelerator")
"""Default rules that say "AI of unknown kind" without a ``fallback.`` or ``.other`` id."""


def is_fallback_rule(rule_id: ir.StringValue) -> ir.BooleanValue:
    """True when ``rule_id`` names a catch-all rather than a specific pattern.

    Fallbacks are the ``fallback.*`` rules, the per-service ``*.other`` rules and the
    accelerator rules of :data:`FALLBACK_RULE_IDS`. User rules (``user.*``) are never
    fallbacks: someone wrote them for a purpose. Why: the share of AI spend a fallback
    decided is the share whose class is a guess, and so where a rule is worth writing.
    """
    generic = rule_id.startswith("fallback.") | rule_id.endswith(".other") | rule_id.isin(FALLBACK_RULE_IDS)
    return generic & ~rule_id.startswith(USER_RULE_PREFIX)


_GATEWAY_FINE_TUNING = "fine[- _]?tun|training|customization"


def classify_requests(llm_requests: ibis.Table) -> ibis.Table:
    """Add ``workload`` and ``workload_rule`` to gateway and model-API rows (``llm_requests``).

    * ``call_type`` naming fine-tuning or training → training (``gateway.fine-tuning``);
    * ``call_type`` 'cost' (a cost line the usage data did not cover, see
      connectors/model_usage.py) → the class of its line item, read from the
      ``line_item:<name>`` entry of ``tags``: training for fine-tuning / training lines
      (``gateway.cost-line.training``), else inference (``gateway.cost-line.inference``);
    * anything else (completions, chat, embeddings, images, audio, NULL) → inference
      (``gateway.inference``): a request to a model is serving it.

    Why: requests carry no SKU, so the charges' rules do not apply; one class per row lets
    token costs be split by workload like the bill.

    >>> t = ibis.memtable({"call_type": ["acompletion", "cost", "fine_tuning"],
    ...                    "tags": [None, ["line_item:fine-tuning training"], None]})
    >>> classify_requests(t).select("workload", "workload_rule").to_polars().rows()
    [('inference', 'gateway.inference'), ('training', 'gateway.cost-line.training'), ('training', 'gateway.fine-tuning')]
    """
    call_type = llm_requests.call_type.fill_null("").strip().lower()
    line_items = llm_requests.tags.filter(lambda tag: tag.startswith("line_item:"))
    line_item = line_items.join(" | ").fill_null("")
    is_cost_line = call_type == "cost"
    cases = [
        (_search(call_type, _GATEWAY_FINE_TUNING), "training", "gateway.fine-tuning"),
        (is_cost_line & _search(line_item, _GATEWAY_FINE_TUNING), "training", "gateway.cost-line.training"),
        (is_cost_line, "inference", "gateway.cost-line.inference"),
    ]
    workload = ibis.cases(*((cond, w) for cond, w, _ in cases), else_="inference")
    rule_id = ibis.cases(*((cond, r) for cond, _, r in cases), else_="gateway.inference")
    return llm_requests.mutate(workload=workload, workload_rule=rule_id)


def is_ai(classified: ibis.Table) -> ir.BooleanValue:
    """True for rows of a :func:`classify` table that are AI spend (workload other than non-AI)."""
    return classified.workload != NON_AI


def rules_table(rules: list[Rule] | None = None) -> pl.DataFrame:
    """The rules as a table (order, id, workload, description): for documentation and notebooks.

    >>> rules_table().columns
    ['order', 'id', 'workload', 'description']
    """
    rules = RULES if rules is None else rules
    return pl.DataFrame(
        {
            "order": list(range(1, len(rules) + 1)),
            "id": [r.id for r in rules],
            "workload": [r.workload for r in rules],
            "description": [r.description for r in rules],
        }
    )
