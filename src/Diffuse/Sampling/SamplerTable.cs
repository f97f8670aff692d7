namespace Diffuse.Sampling;

/// <summary>The options beyond steps, spacing and x0 clipping that a sampler may accept.</summary>
[Flags]
public enum SamplerOption
{
    /// <summary>None of them.</summary>
    None = 0,
    /// <summary><see cref="SamplerOptions.Eta"/>: DDIM's stochasticity η.</summary>
    Eta = 1,
    /// <summary><see cref="SamplerOptions.Variance"/>: DDPM's reverse variance (β̃ or β).</summary>
    Variance = 2,
    /// <summary><see cref="SamplerOptions.Churn"/>: stochastic churn (Karras et al. 2022, Algorithm 2).</summary>
    Churn = 4,
    /// <summary>The noise-level spacings (karras, logsnr) and explicit noise-level lists, besides the trained timesteps.</summary>
    NoiseLevels = 8,
}

/// <summary>
/// One row of the sampler table: everything the rest of Diffuse needs to know about a sampler. Validation, the command
/// line's help and errors, the sampler benchmark, the server's batching and the editing commands read these rows rather
/// than naming samplers.
/// </summary>
/// <param name="Kind">The algorithm.</param>
/// <param name="Name">Its name on the command line, in reports and in sampler.json.</param>
/// <param name="Summary">One line: the method and its paper.</param>
/// <param name="EvaluationsPerStep">Network evaluations per step (Heun's correction makes 2; one fewer on a step to σ = 0 or from σ = ∞).</param>
/// <param name="Options">The options it accepts besides steps, spacing and x0 clipping.</param>
/// <param name="DrawsNoise">Whether it draws fresh noise at every step (then it cannot run backwards for inversion).</param>
/// <param name="Scale">The variable its state is kept in.</param>
/// <param name="CreateRule">A new run of its update rule, for <see cref="SamplerDriver.Run"/>.</param>
public sealed record SamplerDefinition(
    SamplerKind Kind, string Name, string Summary, int EvaluationsPerStep, SamplerOption Options, bool DrawsNoise,
    StateScale Scale, Func<ISamplerStepRule> CreateRule)
{
    /// <summary>Whether it accepts <paramref name="option"/>.</summary>
    public bool Accepts(SamplerOption option) => (Options & option) == option;

    /// <summary>
    /// Whether <paramref name="options"/> make it deterministic: it draws no noise of its own, without η or churn. Only
    /// a deterministic sampler solves the probability-flow ODE, runs backwards (inversion) and can share evaluations of
    /// rows of different seeds.
    /// </summary>
    public bool IsDeterministic(SamplerOptions options) => !DrawsNoise && options.Eta == 0 && options.Churn is null;

    /// <summary>
    /// Network evaluations one sample costs on the decreasing levels <paramref name="levels"/> (ending at 0):
    /// <see cref="EvaluationsPerStep"/> on each step, one on a step that ends at σ = 0 or starts at σ = ∞.
    /// </summary>
    public int FunctionEvaluations(IReadOnlyList<double> levels)
    {
        int evaluations = 0;
        for (int i = 0; i + 1 < levels.Count; i++)
            evaluations += levels[i + 1] > 0 && !double.IsPositiveInfinity(levels[i]) ? EvaluationsPerStep : 1;
        return evaluations;
    }
}

/// <summary>
/// The table of samplers (<see cref="SamplerDefinition"/>): adding a sampler is one update rule
/// (<see cref="ISamplerStepRule"/>), one value of <see cref="SamplerKind"/> and one row here.
/// </summary>
public static class SamplerTable
{
    private const SamplerOption Continuous = SamplerOption.NoiseLevels;

    /// <summary>Every sampler, in the order of <see cref="SamplerKind"/>.</summary>
    public static IReadOnlyList<SamplerDefinition> All { get; } = new SamplerDefinition[]
    {
        new(SamplerKind.Ddpm, "ddpm", "ancestral sampling from p(z_s | z_t) on trained timesteps (Ho et al. 2020, Algorithm 2); σ² = β̃ (small) or β (large), or the learned variance",
            1, SamplerOption.Variance, DrawsNoise: true, StateScale.VariancePreserving, () => new DdpmRule()),
        new(SamplerKind.Ddim, "ddim", "DDIM on trained timesteps (Song et al. 2021, eq. 12); η = 0 is deterministic (Euler in σ), η = 1 as stochastic as DDPM",
            1, SamplerOption.Eta, DrawsNoise: false, StateScale.VariancePreserving, () => new DdimRule()),
        new(SamplerKind.Euler, "euler", "Euler on the probability-flow ODE in σ (Karras et al. 2022, Algorithm 2 without the correction); optional churn",
            1, Continuous | SamplerOption.Churn, DrawsNoise: false, StateScale.VarianceExploding, () => new EulerRule(heun: false)),
        new(SamplerKind.Heun, "heun", "Heun's second-order method (Karras et al. 2022, Algorithms 1–2); optional churn",
            2, Continuous | SamplerOption.Churn, DrawsNoise: false, StateScale.VarianceExploding, () => new EulerRule(heun: true)),
        new(SamplerKind.EulerAncestral, "euler-ancestral", "the ancestral (DDPM, σ² = β̃) step written in σ, on any levels (k-diffusion's Euler ancestral)",
            1, Continuous, DrawsNoise: true, StateScale.VarianceExploding, () => new EulerAncestralRule()),
        new(SamplerKind.DpmSolver2M, "dpm++2m", "DPM-Solver++(2M), second-order multistep (Lu et al. 2022, Algorithm 2)",
            1, Continuous, DrawsNoise: false, StateScale.VarianceExploding, () => new DpmSolverRule(order: 2)),
        new(SamplerKind.DpmSolver3M, "dpm++3m", "DPM-Solver++ carried to a true third order (Lu et al. 2022); differs from k-diffusion's and diffusers' 3M",
            1, Continuous, DrawsNoise: false, StateScale.VarianceExploding, () => new DpmSolverRule(order: 3)),
        new(SamplerKind.DpmSolver2MSde, "dpm++2m-sde", "SDE-DPM-Solver++(2M), the reverse SDE in data-prediction form (Lu et al. 2022)",
            1, Continuous, DrawsNoise: true, StateScale.VarianceExploding, () => new DpmSolverSdeRule()),
        new(SamplerKind.UniPc, "unipc", "UniPC: the UniP-2 predictor with the UniC corrector, B(h) = e^h − 1 (Zhao et al. 2023)",
            1, Continuous, DrawsNoise: false, StateScale.VarianceExploding, () => new UniPcRule()),
    };

    /// <summary>The row of <paramref name="kind"/>.</summary>
    public static SamplerDefinition Of(SamplerKind kind) => All.First(d => d.Kind == kind);

    /// <summary>
    /// Throws a <see cref="DiffuseException"/> naming the first option of <paramref name="options"/> that
    /// <paramref name="options"/>' sampler does not accept, or whose value is out of range: the checks every run makes,
    /// from <see cref="SamplerOptions.Validate"/> and from <see cref="SamplerDriver.Run"/> alike.
    /// </summary>
    public static void CheckOptions(SamplerOptions options)
    {
        var row = Of(options.Kind);
        if (options.Eta != 0 && !row.Accepts(SamplerOption.Eta))
            throw new DiffuseException($"{Param.Of("SamplerOptions.Eta")} applies to {Accepting(SamplerOption.Eta)} only, not to {row.Name}.");
        if (options.Variance != DdpmVariance.Small && !row.Accepts(SamplerOption.Variance))
            throw new DiffuseException($"{Param.Of("SamplerOptions.Variance")} applies to {Accepting(SamplerOption.Variance)} only, not to {row.Name}.");
        if (options.Churn is not null && !row.Accepts(SamplerOption.Churn))
            throw new DiffuseException($"stochastic churn applies to {Accepting(SamplerOption.Churn)}, not to {row.Name}.");
        CheckValues(options);
    }

    /// <summary>The ranges of η, the x0 clip and the churn, whichever rule reads them (<see cref="SamplerDriver.Run"/> checks these).</summary>
    internal static void CheckValues(SamplerOptions options)
    {
        // σ_t = η·√((1 − ᾱ_{t−1})/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_{t−1}) (Song et al. 2021, eq. 16): above η = 1 the direction term
        // √(1 − ᾱ_{t−1} − σ_t²) is the root of a negative number at some steps.
        if (!(options.Eta >= 0 && options.Eta <= 1)) throw new DiffuseException($"{Param.Of("SamplerOptions.Eta")} must lie in [0, 1]: 0 is deterministic DDIM, 1 as stochastic as DDPM (got {options.Eta}).");
        if (options.ClipX0 is { } c && !(c > 0)) throw new DiffuseException($"the x0 clip range must be positive (got {c}).");
        options.Churn?.Validate();
    }

    /// <summary>"euler and heun": the names of the samplers that accept <paramref name="option"/>.</summary>
    public static string Accepting(SamplerOption option)
    {
        var names = All.Where(d => d.Accepts(option)).Select(d => d.Name).ToArray();
        return names.Length <= 1 ? string.Concat(names) : $"{string.Join(", ", names[..^1])} and {names[^1]}";
    }
}
