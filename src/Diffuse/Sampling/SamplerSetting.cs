using Diffuse.Schedules;

namespace Diffuse.Sampling;

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
        var row = SamplerTable.Of(Kind);
        var defaults = new SamplerOptions();
        return (template ?? defaults) with
        {
            Kind = Kind,
            Steps = Steps,
            Spacing = Spacing,
            TimestepList = null,
            SigmaList = null,
            Churn = null,
            Eta = row.Accepts(SamplerOption.Eta) ? template?.Eta ?? defaults.Eta : defaults.Eta,
            Variance = row.Accepts(SamplerOption.Variance) ? template?.Variance ?? defaults.Variance : defaults.Variance,
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
            if (SamplerSpacings.IsTimesteps(options.Spacing) && steps >= schedule.Timesteps) break;
        }
        return best;
    }
}
