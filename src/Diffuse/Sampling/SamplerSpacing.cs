using Diffuse.Schedules;

namespace Diffuse.Sampling;

/// <summary>Timestep subsequences for few-step sampling.</summary>
public static class Timesteps
{
    /// <summary>
    /// The timestep indices (0-based, n = t − 1) a sampler visits, in decreasing order, for <paramref name="steps"/> of
    /// <paramref name="trained"/> trained timesteps; <paramref name="steps"/> = 0 or ≥ T means every timestep.
    /// </summary>
    public static int[] Select(int trained, int steps, SamplerSpacing spacing)
    {
        if (trained < 1) throw new DiffuseException("the model has no timesteps.");
        if (steps < 0) throw new DiffuseException($"the number of sampling steps must be positive (got {steps}).");
        if (!SamplerSpacings.IsTimesteps(spacing))
            throw new DiffuseException($"the {SamplerSpacings.Name(spacing)} spacing picks noise levels between the trained ones, not trained timesteps: use trailing, leading or linspace.");
        if (steps == 0 || steps >= trained) return Enumerable.Range(0, trained).Reverse().ToArray();
        var chosen = new int[steps];
        for (int k = 0; k < steps; k++)
        {
            chosen[k] = spacing switch
            {
                SamplerSpacing.Linspace => steps == 1 ? trained - 1 : (int)Math.Round((double)k * (trained - 1) / (steps - 1), MidpointRounding.ToEven),
                SamplerSpacing.Leading => k * (trained / steps),
                SamplerSpacing.Trailing => (int)Math.Round(trained - (double)k * trained / steps, MidpointRounding.ToEven) - 1,
                _ => throw new ArgumentOutOfRangeException(nameof(spacing)),
            };
        }
        return chosen.Distinct().OrderByDescending(n => n).ToArray();
    }

    /// <summary>Checks a user-given list: distinct indices within [0, T − 1]; returns it in decreasing order.</summary>
    public static int[] Validate(IEnumerable<int> timesteps, int trained)
    {
        var list = timesteps.ToArray();
        if (list.Length == 0) throw new DiffuseException("the timestep list is empty.");
        foreach (var n in list)
            if (n < 0 || n >= trained) throw new DiffuseException($"timestep {n} is outside the trained range 0 … {trained - 1}.");
        if (list.Distinct().Count() != list.Length) throw new DiffuseException("the timestep list repeats a timestep.");
        return list.OrderByDescending(n => n).ToArray();
    }
}

/// <summary>
/// Where a sampler puts its steps, the one spacing type of <see cref="SamplerOptions"/>, sampler.json and the command
/// line: the noise levels of S of the T trained timesteps (the definitions of Lin et al. 2023, Table 2), which every
/// sampler accepts, or S levels between the trained σ_max and σ_min, which the σ-space samplers accept
/// (<see cref="SamplerOption.NoiseLevels"/>).
/// </summary>
public enum SamplerSpacing
{
    /// <summary>Timesteps round(T − k·T/S) − 1 for k = 0 … S − 1: starts at the noisiest step T − 1.</summary>
    Trailing,
    /// <summary>Timesteps k·⌊T/S⌋ for k = 0 … S − 1: starts at 0, never reaches the noisiest steps when T/S is not whole.</summary>
    Leading,
    /// <summary>Timesteps round(linspace(0, T − 1, S)): includes the first and the last trained timestep.</summary>
    Linspace,
    /// <summary>Karras et al. 2022, eq. 5: uniform in σ^(1/ρ) between the trained σ_max and σ_min (ρ = 7 by default; <see cref="NoiseLevels.Karras(NoiseSchedule, int, double)"/>).</summary>
    Karras,
    /// <summary>Uniform in log-SNR = −2·log σ between the trained σ_max and σ_min, i.e. geometric in σ (<see cref="NoiseLevels.LogSnr(NoiseSchedule, int)"/>).</summary>
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

    /// <summary>Whether <paramref name="kind"/> can step with <paramref name="spacing"/>: its row of <see cref="SamplerTable"/> accepts noise-level spacings, or the spacing picks timesteps.</summary>
    public static bool Fits(SamplerKind kind, SamplerSpacing spacing) => IsTimesteps(spacing) || SamplerTable.Of(kind).Accepts(SamplerOption.NoiseLevels);

    /// <summary>The spacing <paramref name="options"/> use, or null when they give an explicit timestep or noise-level list.</summary>
    public static SamplerSpacing? Of(SamplerOptions options) =>
        options.TimestepList is not null || options.SigmaList is not null ? null : options.Spacing;

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
