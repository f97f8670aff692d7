using Diffuse.Schedules;

namespace Diffuse.Sampling;

/// <summary>
/// Where a sampler puts its steps, as one name: the trained-timestep spacings that DDPM and DDIM step on (and that the
/// σ-space samplers can take as their noise levels), or the noise-level spacings of the σ-space samplers.
/// </summary>
public enum SamplerSpacing
{
    /// <summary>The trained timesteps of <see cref="TimestepSpacing.Trailing"/> (for σ-space samplers: their noise levels).</summary>
    Trailing,
    /// <summary>The trained timesteps of <see cref="TimestepSpacing.Leading"/>.</summary>
    Leading,
    /// <summary>The trained timesteps of <see cref="TimestepSpacing.Linspace"/>.</summary>
    Linspace,
    /// <summary><see cref="NoiseLevelSpacing.Karras"/> (σ-space samplers only).</summary>
    Karras,
    /// <summary><see cref="NoiseLevelSpacing.LogSnr"/> (σ-space samplers only).</summary>
    LogSnr,
}

/// <summary>The names of <see cref="SamplerSpacing"/> on the command line, in reports and in sampler.json.</summary>
public static class SamplerSpacings
{
    private static readonly (SamplerSpacing Spacing, string Name)[] Table =
    {
        (SamplerSpacing.Trailing, "trailing"), (SamplerSpacing.Leading, "leading"), (SamplerSpacing.Linspace, "linspace"),
        (SamplerSpacing.Karras, "karras"), (SamplerSpacing.LogSnr, "logsnr"),
    };

    /// <summary>Every name, in the order of <see cref="SamplerSpacing"/>.</summary>
    public static IReadOnlyList<string> All { get; } = Table.Select(e => e.Name).ToArray();

    /// <summary>The name of <paramref name="spacing"/> (e.g. "karras").</summary>
    public static string Name(SamplerSpacing spacing) => Table.First(e => e.Spacing == spacing).Name;

    /// <summary>The spacing called <paramref name="name"/> (case-insensitive), or null.</summary>
    public static SamplerSpacing? TryParse(string? name)
    {
        string key = (name ?? "").Trim();
        foreach (var (spacing, candidate) in Table)
            if (string.Equals(candidate, key, StringComparison.OrdinalIgnoreCase)) return spacing;
        return null;
    }

    /// <summary>
    /// The spacing called <paramref name="name"/>; throws a <see cref="DiffuseException"/> listing the names otherwise, in
    /// which <paramref name="option"/> (default: the spacing name) names the value.
    /// </summary>
    public static SamplerSpacing Parse(string name, string? option = null) =>
        TryParse(name) ?? throw new DiffuseException($"{option ?? Param.Of("SamplerSpacings.Parse(name)", "the spacing name")} must be one of {string.Join(", ", All)} (got '{name}').");

    /// <summary>Whether <paramref name="spacing"/> picks trained timesteps (trailing, leading, linspace), which every sampler accepts.</summary>
    public static bool IsTimesteps(SamplerSpacing spacing) => spacing is SamplerSpacing.Trailing or SamplerSpacing.Leading or SamplerSpacing.Linspace;

    /// <summary>Whether <paramref name="kind"/> can step with <paramref name="spacing"/>: DDPM and DDIM take timestep spacings only.</summary>
    public static bool Fits(SamplerKind kind, SamplerSpacing spacing) => IsTimesteps(spacing) || SamplerNames.UsesNoiseLevels(kind);

    /// <summary>
    /// The spacing <paramref name="options"/> use (its timestep spacing, or its noise-level spacing for σ-space samplers),
    /// or null when they give an explicit timestep or noise-level list.
    /// </summary>
    public static SamplerSpacing? Of(SamplerOptions options)
    {
        if (options.TimestepList is not null || options.SigmaList is not null) return null;
        if (SamplerNames.UsesNoiseLevels(options.Kind))
        {
            if (options.Sigmas == NoiseLevelSpacing.Karras) return SamplerSpacing.Karras;
            if (options.Sigmas == NoiseLevelSpacing.LogSnr) return SamplerSpacing.LogSnr;
        }
        return options.Spacing switch
        {
            TimestepSpacing.Leading => SamplerSpacing.Leading,
            TimestepSpacing.Linspace => SamplerSpacing.Linspace,
            _ => SamplerSpacing.Trailing,
        };
    }

    /// <summary>
    /// "dpm++2m, karras, 10 steps": the sampler, its spacing ("list" for an explicit list) and the number of steps it
    /// makes under <paramref name="schedule"/>.
    /// </summary>
    public static string Describe(SamplerOptions options, NoiseSchedule schedule)
    {
        string spacing = Of(options) is { } s ? Name(s) : "list";
        int steps = options.StepCount(schedule);
        return $"{SamplerNames.Name(options.Kind)}, {spacing}, {steps} step{(steps == 1 ? "" : "s")}";
    }
}

/// <summary>
/// One sampler configuration that the sampler benchmark measures and sampler.json records: an algorithm, a spacing and
/// a step count (see <see cref="Benchmarking.SamplerBenchmark"/>).
/// </summary>
/// <param name="Kind">The algorithm.</param>
/// <param name="Spacing">Where it puts its steps; must fit the algorithm (<see cref="SamplerSpacings.Fits"/>).</param>
/// <param name="Steps">The requested number of steps (≥ 1; for timestep spacings at most the trained count is used).</param>
public sealed record SamplerSetting(SamplerKind Kind, SamplerSpacing Spacing, int Steps)
{
    /// <summary>
    /// The sampler options of this setting; the other options (x0 clipping, DDPM variance, ρ, …) come from
    /// <paramref name="template"/> (the defaults when null), while any explicit timestep or noise-level list and churn
    /// are dropped.
    /// </summary>
    public SamplerOptions ToOptions(SamplerOptions? template = null)
    {
        if (Steps < 1) throw new DiffuseException($"a sampler setting needs at least 1 step (got {Steps}).");
        if (!SamplerSpacings.Fits(Kind, Spacing))
            throw new DiffuseException($"{SamplerNames.Name(Kind)} steps on trained timesteps and cannot use the {SamplerSpacings.Name(Spacing)} spacing.");
        var options = (template ?? new SamplerOptions()) with
        {
            Kind = Kind,
            Steps = Steps,
            TimestepList = null,
            SigmaList = null,
            Churn = null,
            Eta = Kind == SamplerKind.Ddim ? template?.Eta ?? 0 : 0,
        };
        return Spacing switch
        {
            SamplerSpacing.Karras => options with { Sigmas = NoiseLevelSpacing.Karras, Spacing = TimestepSpacing.Trailing },
            SamplerSpacing.LogSnr => options with { Sigmas = NoiseLevelSpacing.LogSnr, Spacing = TimestepSpacing.Trailing },
            SamplerSpacing.Leading => options with { Sigmas = NoiseLevelSpacing.Timesteps, Spacing = TimestepSpacing.Leading },
            SamplerSpacing.Linspace => options with { Sigmas = NoiseLevelSpacing.Timesteps, Spacing = TimestepSpacing.Linspace },
            _ => options with { Sigmas = NoiseLevelSpacing.Timesteps, Spacing = TimestepSpacing.Trailing },
        };
    }

    /// <summary>The number of network evaluations (NFE) one sample costs under <paramref name="schedule"/>.</summary>
    public int FunctionEvaluations(NoiseSchedule schedule) => ToOptions().FunctionEvaluations(schedule);

    /// <summary>"dpm++2m, karras, 10 steps" under <paramref name="schedule"/>.</summary>
    public string Describe(NoiseSchedule schedule) => SamplerSpacings.Describe(ToOptions(), schedule);

    /// <summary>
    /// The setting of <paramref name="kind"/> and <paramref name="spacing"/> whose cost is the largest number of network
    /// evaluations not above <paramref name="budget"/> (Heun makes about two per step, the others one), with the fewest
    /// steps that reach it (see <see cref="StepsForBudget"/>).
    /// </summary>
    public static SamplerSetting ForBudget(SamplerKind kind, SamplerSpacing spacing, NoiseSchedule schedule, int budget) =>
        new(kind, spacing, StepsForBudget(new SamplerSetting(kind, spacing, 1).ToOptions(), schedule, budget));

    /// <summary>
    /// The step count of a sampler given by <paramref name="options"/> whose cost is the largest number of network
    /// evaluations not above <paramref name="budget"/> (e.g. 5 steps of Heun for 10: 2 per step, 1 on the last), with
    /// the fewest steps that reach it. One step always fits (it costs one evaluation); timestep spacings stop growing at
    /// the trained count. Explicit timestep or noise-level lists fix the steps and are not allowed here.
    /// </summary>
    public static int StepsForBudget(SamplerOptions options, NoiseSchedule schedule, int budget)
    {
        if (budget < 1) throw new DiffuseException($"an evaluation budget must be at least 1 (got {budget}).");
        if (options.TimestepList is not null || options.SigmaList is not null)
            throw new DiffuseException("an explicit timestep or noise-level list fixes the steps: it cannot be fitted to an evaluation budget.");
        int best = 1, bestEvaluations = 0;
        // NFE never falls as steps grow and is at least the step count, so more steps than the budget cannot fit.
        for (int steps = 1; steps <= budget; steps++)
        {
            int evaluations = (options with { Steps = steps }).FunctionEvaluations(schedule);
            if (evaluations > budget) break;
            if (evaluations > bestEvaluations) (best, bestEvaluations) = (steps, evaluations);
            if (!SamplerNames.UsesNoiseLevels(options.Kind) || options.Sigmas == NoiseLevelSpacing.Timesteps)
                if (steps >= schedule.Timesteps) break;
        }
        return best;
    }
}
