using System.Diagnostics;
using Diffuse.Evaluation.SampleQuality;
using Diffuse.Sampling;
using Diffuse.Schedules;

namespace Diffuse.Benchmarking;

/// <summary>What <see cref="SamplerBenchmark.Run"/> measures.</summary>
/// <param name="Budgets">Budgets of network evaluations (NFE) per sample, each ≥ 1.</param>
/// <param name="Samplers">The algorithms to compare (<see cref="DefaultSamplers"/>: every row of <see cref="SamplerTable"/>).</param>
/// <param name="Spacings">
/// The spacings: each sampler runs with those its row of <see cref="SamplerTable"/> accepts (DDPM and DDIM only with
/// the timestep spacings among them: trailing, leading, linspace).
/// </param>
/// <param name="Count">Samples per setting (≥ 2).</param>
/// <param name="Seed">Sampling seed: every setting draws samples 0 … Count − 1 of this seed, so all start from the same noise.</param>
/// <param name="Classes">
/// For a class-conditional model, the class of each sample (Count labels, e.g. i % K for sample i); null samples
/// unconditionally.
/// </param>
/// <param name="Guidance">Classifier-free guidance scale s of the conditional samples (1 the conditional model; Ho and Salimans' w is s − 1; see <see cref="Denoisers.ClassifierFreeGuidance"/>).</param>
/// <param name="ReferenceSteps">
/// Steps of the reference (DDPM) and of the ODE limit (DDIM), trailing timesteps; 0 (the default) for every trained
/// timestep. Fewer steps make a cheaper but weaker reference, for image models where every timestep is expensive.
/// </param>
/// <param name="OdeLimitSteps">
/// Steps of the ODE limit (DDIM, trailing timesteps) when they should differ from the reference's; 0 (the default) for
/// as many as the reference. With images, a fine DDIM run costs as much as the reference: 100 steps already sit far
/// closer to the ODE's solution than any few-step sampler.
/// </param>
public sealed record SamplerBenchmarkOptions(
    IReadOnlyList<int> Budgets, IReadOnlyList<SamplerKind> Samplers, IReadOnlyList<SamplerSpacing> Spacings, int Count, ulong Seed = 0,
    IReadOnlyList<long>? Classes = null, double Guidance = 1.0, int ReferenceSteps = 0, int OdeLimitSteps = 0)
{
    /// <summary>The default budgets: 5, 10, 20, 50 and 100 evaluations.</summary>
    public static IReadOnlyList<int> DefaultBudgets { get; } = new[] { 5, 10, 20, 50, 100 };

    /// <summary>The default samplers: every row of <see cref="SamplerTable"/>.</summary>
    public static IReadOnlyList<SamplerKind> DefaultSamplers => SamplerTable.All.Select(d => d.Kind).ToArray();

    /// <summary>The default spacings: trailing timesteps, Karras and uniform log-SNR.</summary>
    public static IReadOnlyList<SamplerSpacing> DefaultSpacings { get; } = new[] { SamplerSpacing.Trailing, SamplerSpacing.Karras, SamplerSpacing.LogSnr };

    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid value.</summary>
    public void Validate()
    {
        if (Budgets.Count == 0) throw new DiffuseException($"{Param.Of("SamplerBenchmarkOptions.Budgets")} is empty: give evaluation budgets such as 5,10,20.");
        foreach (int b in Budgets)
            if (b < 1) throw new DiffuseException($"every budget must be at least 1 network evaluation (got {b}).");
        if (Budgets.Distinct().Count() != Budgets.Count) throw new DiffuseException($"{Param.Of("SamplerBenchmarkOptions.Budgets")} repeats a budget: give each once.");
        if (Samplers.Count == 0) throw new DiffuseException($"{Param.Of("SamplerBenchmarkOptions.Samplers")} is empty: give at least one sampler.");
        if (Spacings.Count == 0) throw new DiffuseException($"{Param.Of("SamplerBenchmarkOptions.Spacings")} is empty: give at least one spacing.");
        if (!Samplers.Any(k => Spacings.Any(s => SamplerSpacings.Fits(k, s))))
            throw new DiffuseException($"{string.Join(" and ", Samplers.Distinct().Select(SamplerNames.Name))} step on trained timesteps only: with only karras or logsnr in {Param.Of("SamplerBenchmarkOptions.Spacings")}, add a σ-space sampler or the trailing spacing.");
        if (Count < 2) throw new DiffuseException($"{Param.Of("SamplerBenchmarkOptions.Count")} must be at least 2 (got {Count}).");
        if (Classes is not null && Classes.Count != Count) throw new DiffuseException($"{Classes.Count} class labels were given for {Count} samples per setting.");
        if (double.IsNaN(Guidance) || Guidance < 0) throw new DiffuseException($"{Param.Of("SamplerBenchmarkOptions.Guidance")} must be zero or positive (got {Guidance}).");
        if (ReferenceSteps < 0) throw new DiffuseException($"{Param.Of("SamplerBenchmarkOptions.ReferenceSteps")} must be at least 1 (got {ReferenceSteps}).");
        if (OdeLimitSteps < 0) throw new DiffuseException($"{Param.Of("SamplerBenchmarkOptions.OdeLimitSteps")} must be at least 1 (got {OdeLimitSteps}).");
    }

    /// <summary>The steps of the reference and the ODE limit: <see cref="ReferenceSteps"/>, at most the trained timesteps, or all of them.</summary>
    public int ReferenceStepCount(NoiseSchedule schedule) => ReferenceSteps > 0 ? Math.Min(ReferenceSteps, schedule.Timesteps) : schedule.Timesteps;

    /// <summary>The steps of the ODE limit: <see cref="OdeLimitSteps"/>, at most the trained timesteps, or those of the reference.</summary>
    public int OdeLimitStepCount(NoiseSchedule schedule) => OdeLimitSteps > 0 ? Math.Min(OdeLimitSteps, schedule.Timesteps) : ReferenceStepCount(schedule);
}

/// <summary>One measured cell of the benchmark.</summary>
/// <param name="Setting">The sampler, spacing and steps.</param>
/// <param name="Budget">The budget this setting was chosen for (the trained count for the reference).</param>
/// <param name="FunctionEvaluations">What one sample actually cost (≤ <paramref name="Budget"/>).</param>
/// <param name="Quality">The metric's measurement; its value is NaN when the samples were not finite (the worst result).</param>
/// <param name="Seconds">Wall time of drawing the samples (the metric not included).</param>
public sealed record SamplerRun(SamplerSetting Setting, int Budget, int FunctionEvaluations, QualityMeasurement Quality, double Seconds)
{
    /// <summary>This run as a cell of <see cref="SamplerRecord"/>.</summary>
    public RecordedSetting ToRecordedSetting() => new(Budget, SamplerNames.Name(Setting.Kind), SamplerSpacings.Name(Setting.Spacing),
        Setting.Steps, FunctionEvaluations, Quality.Value, Quality.StdError, Seconds);
}

/// <summary>Progress of <see cref="SamplerBenchmark.Run"/>: a setting was measured.</summary>
/// <param name="Done">Settings measured so far (the reference included).</param>
/// <param name="Total">Settings to measure in all.</param>
/// <param name="Run">The setting just measured.</param>
/// <param name="Reused">True when the run was taken from earlier measurements instead of drawn again.</param>
public sealed record SamplerBenchmarkProgress(int Done, int Total, SamplerRun Run, bool Reused = false);

/// <summary>Progress of <see cref="SamplerBenchmark.Run"/> within a setting: a sampler step of a batch was taken.</summary>
/// <param name="Evaluations">Network evaluations of one sample each done so far, over every setting (a step of b samples by a sampler of n evaluations over s steps adds b·n/s).</param>
/// <param name="Total">The evaluations of the whole benchmark (<see cref="SamplerBenchmark.TotalEvaluations"/>).</param>
/// <param name="Setting">The setting being measured.</param>
/// <param name="Index">Its position among the settings to measure (1-based).</param>
public sealed record SamplerBenchmarkWork(double Evaluations, double Total, SamplerSetting Setting, int Index);

/// <summary>Everything <see cref="SamplerBenchmark.Run"/> measured, and what it concludes.</summary>
/// <param name="MetricName">The metric's name (<see cref="ISampleQualityMetric.Name"/>).</param>
/// <param name="MetricUnit">The metric's unit.</param>
/// <param name="HigherIsBetter">The metric's direction.</param>
/// <param name="Options">What was measured.</param>
/// <param name="Reference">
/// DDPM with every trained timestep (or <see cref="SamplerBenchmarkOptions.ReferenceSteps"/>): what the other settings
/// are measured against.
/// </param>
/// <param name="OdeLimit">
/// DDIM (η = 0) with every trained timestep (or <see cref="SamplerBenchmarkOptions.OdeLimitStepCount"/> steps): the probability-flow ODE solved finely, the limit that every deterministic
/// sampler (ddim, euler, heun, dpm++2m, dpm++3m, unipc) approaches as its steps grow. Where it falls short of the
/// reference, the model's ODE and its reverse SDE differ and only the stochastic samplers can close the gap.
/// </param>
/// <param name="Runs">Every (setting, budget) cell, by sampler, spacing, then budget; a setting that fits two budgets is measured once and listed under each.</param>
/// <param name="Best">The best cell of each budget (ascending), by the metric's value; a budget whose samples were all non-finite has none.</param>
/// <param name="DefaultBudget">
/// The budget whose best setting <c>diffuse sample</c> uses by default: the smallest budget whose best setting matches
/// the reference (<see cref="ISampleQualityMetric.Matches"/>: for the KDE score, at most 0.01 nats below it), or the
/// largest budget when none does.
/// </param>
public sealed record SamplerBenchmarkResult(
    string MetricName, string MetricUnit, bool HigherIsBetter, SamplerBenchmarkOptions Options, SamplerRun Reference, SamplerRun OdeLimit,
    IReadOnlyList<SamplerRun> Runs, IReadOnlyList<SamplerRun> Best, int DefaultBudget)
{
    /// <summary>The record (<c>sampler.json</c>) of this benchmark of a model at training step <paramref name="modelStep"/>.</summary>
    public SamplerRecord ToRecord(int modelStep) => new(SamplerRecord.FormatName, MetricName, MetricUnit, HigherIsBetter, Options.Count,
        Options.Seed, modelStep, DefaultBudget, Reference.ToRecordedSetting(), Best.Select(run => run.ToRecordedSetting()).ToArray());
}

/// <summary>
/// The sampler benchmark on a trained model: for each sampler, spacing and budget of network evaluations, the setting
/// with the largest cost within the budget (<see cref="SamplerSetting.ForBudget"/>) draws the same samples (same seed,
/// same indices) and a <see cref="ISampleQualityMetric"/> scores them against real data, beside DDPM with every trained
/// timestep as the reference and DDIM with every trained timestep as the limit of the deterministic samplers. Wall time
/// counts sampling only.
/// </summary>
public static class SamplerBenchmark
{
    /// <summary>The reference setting: DDPM ancestral sampling over every trained timestep, or <paramref name="steps"/> trailing ones (0 for all).</summary>
    public static SamplerSetting ReferenceSetting(NoiseSchedule schedule, int steps = 0) =>
        new(SamplerKind.Ddpm, SamplerSpacing.Trailing, steps > 0 ? Math.Min(steps, schedule.Timesteps) : schedule.Timesteps);

    /// <summary>DDIM with η = 0 over every trained timestep (or <paramref name="steps"/> trailing ones): the probability-flow ODE solved finely.</summary>
    public static SamplerSetting OdeLimitSetting(NoiseSchedule schedule, int steps = 0) =>
        new(SamplerKind.Ddim, SamplerSpacing.Trailing, steps > 0 ? Math.Min(steps, schedule.Timesteps) : schedule.Timesteps);

    /// <summary>
    /// The distinct settings <see cref="Run"/> measures, in order: the reference, the ODE limit, then each setting of
    /// <see cref="Plan"/> once.
    /// </summary>
    public static IReadOnlyList<SamplerSetting> Settings(NoiseSchedule schedule, SamplerBenchmarkOptions options) =>
        new[] { ReferenceSetting(schedule, options.ReferenceStepCount(schedule)), OdeLimitSetting(schedule, options.OdeLimitStepCount(schedule)) }.Concat(Plan(schedule, options).Select(c => c.Setting)).Distinct().ToList();

    /// <summary>
    /// The cells of the grid in report order (sampler, spacing, budget ascending): for every sampler and every spacing it
    /// accepts, the setting of each budget.
    /// </summary>
    public static IReadOnlyList<(SamplerSetting Setting, int Budget)> Plan(NoiseSchedule schedule, SamplerBenchmarkOptions options)
    {
        options.Validate();
        var cells = new List<(SamplerSetting, int)>();
        foreach (var kind in options.Samplers.Distinct())
            foreach (var spacing in options.Spacings.Distinct().Where(s => SamplerSpacings.Fits(kind, s)))
                foreach (int budget in options.Budgets.Order())
                    cells.Add((SamplerSetting.ForBudget(kind, spacing, schedule, budget), budget));
        return cells;
    }

    /// <summary>
    /// The network evaluations of one sample each that <see cref="Run"/> makes in all: every distinct setting's
    /// evaluations per sample times <see cref="SamplerBenchmarkOptions.Count"/> (a guided sample's two passes count as one).
    /// </summary>
    /// <param name="schedule">The model's schedule.</param>
    /// <param name="options">What is measured.</param>
    /// <param name="known">Earlier measurements that <see cref="Run"/> will reuse: their settings cost nothing.</param>
    public static double TotalEvaluations(NoiseSchedule schedule, SamplerBenchmarkOptions options, IEnumerable<SamplerRun>? known = null)
    {
        var reused = (known ?? Array.Empty<SamplerRun>()).Select(r => r.Setting).ToHashSet();
        return Settings(schedule, options).Where(s => !reused.Contains(s)).Sum(s => (double)s.ToOptions().FunctionEvaluations(schedule)) * options.Count;
    }

    /// <summary>
    /// Measures the reference and every cell of <see cref="Plan"/> on <paramref name="model"/> (one measurement per
    /// distinct setting), reporting each to <paramref name="progress"/> and every sampler step to <paramref name="work"/>
    /// (a full-length image reference takes hours). Settings found in <paramref name="known"/> (measurements of the same
    /// model, metric, samples and seed, e.g. from an interrupted or narrower run: see <see cref="SamplerRunStore"/>) are
    /// reused instead of drawn again, and reported with <see cref="SamplerBenchmarkProgress.Reused"/>.
    /// </summary>
    public static SamplerBenchmarkResult Run(DiffusionModel model, ISampleQualityMetric metric, SamplerBenchmarkOptions options,
        Action<SamplerBenchmarkProgress>? progress = null, CancellationToken cancellationToken = default, Action<SamplerBenchmarkWork>? work = null,
        IEnumerable<SamplerRun>? known = null)
    {
        var schedule = model.Schedule;
        var plan = Plan(schedule, options);
        int total = Settings(schedule, options).Count, done = 0;
        var earlier = new Dictionary<SamplerSetting, SamplerRun>();
        foreach (var run in known ?? Array.Empty<SamplerRun>()) earlier[run.Setting] = run;
        double totalEvaluations = TotalEvaluations(schedule, options, earlier.Values), evaluations = 0;
        var measured = new Dictionary<SamplerSetting, SamplerRun>();

        SamplerRun Measure(SamplerSetting setting, int budget)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (earlier.TryGetValue(setting, out var reused))
            {
                var again = reused with { Budget = budget };
                measured[setting] = again;
                progress?.Invoke(new SamplerBenchmarkProgress(++done, total, again, Reused: true));
                return again;
            }
            var samplerOptions = setting.ToOptions();
            double nfe = samplerOptions.FunctionEvaluations(schedule);
            double start = evaluations;
            int index = done + 1;
            void OnStep(SamplerStep step)
            {
                cancellationToken.ThrowIfCancellationRequested();
                evaluations += step.Z.shape[0] * nfe / Math.Max(1, step.Count);
                work?.Invoke(new SamplerBenchmarkWork(evaluations, totalEvaluations, setting, index));
            }
            var clock = Stopwatch.StartNew();
            using var samples = model.Sample(options.Count, options.Seed, samplerOptions, OnStep, classes: options.Classes, guidance: options.Guidance);
            // Exact accounting whatever the sampler's step count: the setting's share is its evaluations times the count.
            evaluations = start + nfe * options.Count;
            double seconds = clock.Elapsed.TotalSeconds;
            bool finite;
            using (var check = samples.isfinite().all()) finite = check.item<bool>();
            var quality = finite ? metric.Measure(samples) : new QualityMeasurement(double.NaN, double.NaN, Array.Empty<KeyValuePair<string, double>>());
            var run = new SamplerRun(setting, budget, samplerOptions.FunctionEvaluations(schedule), quality, seconds);
            measured[setting] = run;
            progress?.Invoke(new SamplerBenchmarkProgress(++done, total, run));
            return run;
        }

        int referenceSteps = options.ReferenceStepCount(schedule);
        var reference = Measure(ReferenceSetting(schedule, referenceSteps), referenceSteps);
        int odeSteps = options.OdeLimitStepCount(schedule);
        var odeLimit = Measure(OdeLimitSetting(schedule, odeSteps), odeSteps);
        var runs = new List<SamplerRun>();
        foreach (var (setting, budget) in plan)
        {
            var run = measured.TryGetValue(setting, out var already) ? already : Measure(setting, budget);
            runs.Add(run with { Budget = budget });
        }

        var best = new List<SamplerRun>();
        foreach (int budget in options.Budgets.Order())
        {
            var candidates = runs.Where(r => r.Budget == budget && double.IsFinite(r.Quality.Value)).ToList();
            if (candidates.Count == 0) continue;
            best.Add(metric.HigherIsBetter
                ? candidates.MaxBy(r => r.Quality.Value)!
                : candidates.MinBy(r => r.Quality.Value)!);
        }
        if (best.Count == 0) throw new DiffuseException("every sampler setting produced non-finite samples: the model is broken; train it again.");
        int defaultBudget = best.FirstOrDefault(r => metric.Matches(r.Quality, reference.Quality))?.Budget ?? best[^1].Budget;
        return new SamplerBenchmarkResult(metric.Name, metric.Unit, metric.HigherIsBetter, options, reference, odeLimit, runs, best, defaultBudget);
    }
}
