using Diffuse.Denoisers;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Schedules;
using TorchSharp;
using static TorchSharp.torch;

namespace Diffuse.Sampling;

/// <summary>The sampling algorithm.</summary>
public enum SamplerKind
{
    /// <summary>Ancestral sampling from p(z_s | z_t) (Ho et al. 2020, Algorithm 2).</summary>
    Ddpm,
    /// <summary>DDIM with stochasticity η (Song et al. 2021, eq. 12); η = 0 is deterministic.</summary>
    Ddim,
    /// <summary>Euler on the probability-flow ODE in σ-space (Karras et al. 2022, Algorithm 2 without the correction); see <see cref="SigmaSamplers.Euler"/>.</summary>
    Euler,
    /// <summary>Heun's second-order method (Karras et al. 2022, Algorithms 1–2); see <see cref="SigmaSamplers.Heun"/>.</summary>
    Heun,
    /// <summary>The ancestral (DDPM) step in σ-space; see <see cref="SigmaSamplers.EulerAncestral"/>.</summary>
    EulerAncestral,
    /// <summary>DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2); see <see cref="SigmaSamplers.DpmSolver2M"/>.</summary>
    DpmSolver2M,
    /// <summary>Third-order multistep DPM-Solver++ (Lu et al. 2022); see <see cref="SigmaSamplers.DpmSolver3M"/>.</summary>
    DpmSolver3M,
    /// <summary>SDE-DPM-Solver++(2M) (Lu et al. 2022); see <see cref="SigmaSamplers.DpmSolver2MSde"/>.</summary>
    DpmSolver2MSde,
    /// <summary>UniPC with B(h) = e^h − 1, order 2 (Zhao et al. 2023); see <see cref="SigmaSamplers.UniPc"/>.</summary>
    UniPc,
}

/// <summary>The names of the samplers on the command line and in reports (the names of <see cref="SamplerTable"/>).</summary>
public static class SamplerNames
{
    /// <summary>Every name, in the order of <see cref="SamplerKind"/>.</summary>
    public static IReadOnlyList<string> All { get; } = SamplerTable.All.Select(d => d.Name).ToArray();

    /// <summary>The name of <paramref name="kind"/> (e.g. "dpm++2m").</summary>
    public static string Name(SamplerKind kind) => SamplerTable.Of(kind).Name;

    /// <summary>
    /// The sampler called <paramref name="name"/> (case-insensitive); throws a <see cref="DiffuseException"/> listing the
    /// names otherwise, in which <paramref name="option"/> (default: the sampler name) names the value.
    /// </summary>
    public static SamplerKind Parse(string name, string? option = null)
    {
        string key = name.Trim();
        foreach (var row in SamplerTable.All)
            if (string.Equals(row.Name, key, StringComparison.OrdinalIgnoreCase)) return row.Kind;
        throw new DiffuseException($"{option ?? Param.Of("SamplerNames.Parse(name)", "the sampler name")} must be one of {string.Join(", ", All)} (got '{name}').");
    }

    /// <summary>Whether <paramref name="kind"/> accepts noise levels besides trained timesteps (<see cref="SamplerOption.NoiseLevels"/>: every sampler except DDPM and DDIM).</summary>
    public static bool UsesNoiseLevels(SamplerKind kind) => SamplerTable.Of(kind).Accepts(SamplerOption.NoiseLevels);
}

/// <summary>The variance σ_t² of DDPM's reverse steps (Ho et al. 2020, §3.2).</summary>
public enum DdpmVariance
{
    /// <summary>σ² = β̃, the posterior variance: optimal for deterministic data.</summary>
    Small,
    /// <summary>σ² = β: optimal for x0 ~ N(0, I).</summary>
    Large,
}

/// <summary>Options shared by the samplers; every default is defined here once.</summary>
/// <param name="Kind">The algorithm (its row of <see cref="SamplerTable"/> says which of the options below it accepts).</param>
/// <param name="Steps">Number of steps; 0 means as many as there are trained timesteps.</param>
/// <param name="Spacing">
/// Where the steps go: the noise levels of a subsequence of trained timesteps (trailing, leading, linspace), which every
/// sampler accepts, or levels between the trained σ_max and σ_min (karras, logsnr), which the σ-space samplers accept.
/// </param>
/// <param name="Eta">DDIM's η: 0 is deterministic, 1 matches DDPM's posterior variance.</param>
/// <param name="Variance">DDPM's reverse variance.</param>
/// <param name="ClipX0">When set, clamps the x0 estimate to [−ClipX0, ClipX0] at every step (and recomputes ε).</param>
/// <param name="TimestepList">An explicit list of timestep indices, overriding Steps and a timestep spacing.</param>
/// <param name="SigmaList">An explicit decreasing list of noise levels (a final 0 is added when missing), overriding Steps and Spacing; σ-space samplers only.</param>
/// <param name="Rho">ρ of the Karras spacing.</param>
/// <param name="Churn">Stochastic churn for the Euler and Heun samplers (off when null).</param>
public sealed record SamplerOptions(
    SamplerKind Kind = SamplerKind.Ddpm,
    int Steps = 0,
    SamplerSpacing Spacing = SamplerSpacing.Trailing,
    double Eta = 0.0,
    DdpmVariance Variance = DdpmVariance.Small,
    double? ClipX0 = null,
    int[]? TimestepList = null,
    double[]? SigmaList = null,
    double Rho = 7,
    StochasticChurn? Churn = null)
{
    /// <summary>
    /// The decreasing timestep indices this configuration visits for a schedule of <paramref name="trained"/> steps: the
    /// <see cref="TimestepList"/>, else those of a timestep <see cref="Spacing"/> (a noise-level spacing has none).
    /// </summary>
    public int[] ResolveTimesteps(int trained) =>
        TimestepList is { } list ? Timesteps.Validate(list, trained) : Timesteps.Select(trained, Steps, Spacing);

    /// <summary>
    /// The decreasing noise levels σ_0 &gt; … &gt; σ_N = 0 the sampler visits under <paramref name="schedule"/>:
    /// <see cref="SigmaList"/>, else the levels of <see cref="Spacing"/> for <see cref="Steps"/> steps (0: T steps).
    /// </summary>
    public double[] ResolveSigmas(NoiseSchedule schedule)
    {
        double[] sigmas;
        if (SigmaList is { } list) sigmas = NoiseLevels.Validate(list);
        else
        {
            int steps = Steps == 0 ? schedule.Timesteps : Steps;
            sigmas = Spacing switch
            {
                SamplerSpacing.Karras => NoiseLevels.Karras(schedule, steps, Rho),
                SamplerSpacing.LogSnr => NoiseLevels.LogSnr(schedule, steps),
                _ => NoiseLevels.FromTimesteps(schedule, ResolveTimesteps(schedule.Timesteps)),
            };
        }
        if (double.IsPositiveInfinity(sigmas[0]) && !schedule.HasZeroTerminalSnr)
            throw new DiffuseException("the noise levels start at ∞ (pure noise), which needs a schedule with zero terminal SNR.");
        return sigmas;
    }

    /// <summary>The number of steps (and of step callbacks) this configuration makes under <paramref name="schedule"/>.</summary>
    public int StepCount(NoiseSchedule schedule) => ResolveSigmas(schedule).Length - 1;

    /// <summary>
    /// The number of network evaluations (NFE) one sample costs under <paramref name="schedule"/>: one per step except
    /// for Heun (see <see cref="SamplerDefinition.FunctionEvaluations"/>). Samplers are compared at equal NFE.
    /// </summary>
    public int FunctionEvaluations(NoiseSchedule schedule) => SamplerTable.Of(Kind).FunctionEvaluations(ResolveSigmas(schedule));

    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid option or combination.</summary>
    public void Validate()
    {
        if (Steps < 0) throw new DiffuseException($"{Param.Of("SamplerOptions.Steps")} must be positive (got {Steps}).");
        if (!(Rho > 0) || double.IsInfinity(Rho)) throw new DiffuseException($"{Param.Of("SamplerOptions.Rho")} must be positive (got {Rho}).");
        SamplerTable.CheckOptions(this);
        var row = SamplerTable.Of(Kind);
        if (TimestepList is not null && SigmaList is not null) throw new DiffuseException("give either a timestep list or a noise-level list, not both.");
        bool levelSpacing = !SamplerSpacings.IsTimesteps(Spacing);
        if (!row.Accepts(SamplerOption.NoiseLevels) && (levelSpacing || SigmaList is not null))
            throw new DiffuseException($"{row.Name} steps on trained timesteps: choose them with {Param.Of("SamplerOptions.Spacing")} trailing, leading or linspace; the karras and logsnr spacings and {Param.Of("SamplerOptions.SigmaList", "noise-level lists")} need a σ-space sampler ({string.Join(", ", SamplerTable.All.Where(d => d.Accepts(SamplerOption.NoiseLevels)).Select(d => d.Name))}).");
        if (levelSpacing && (SigmaList is not null || TimestepList is not null))
            throw new DiffuseException("give either a noise-level spacing or an explicit list, not both.");
        if (SigmaList is not null) NoiseLevels.Validate(SigmaList);
    }
}

/// <summary>What a sampler reports after each step. Tensors are valid only during the callback: copy what you keep.</summary>
/// <param name="Step">Steps done so far (1 … Count).</param>
/// <param name="Count">Total number of steps.</param>
/// <param name="Timestep">The timestep index just left (for σ-space samplers the trained timestep nearest to <paramref name="Sigma"/>, or −1 when no schedule is known).</param>
/// <param name="Z">The state after the step, in the variance-preserving scale z = x/√(1 + σ²) (equal to x at the end).</param>
/// <param name="X0">The denoiser's x0 estimate at this step.</param>
/// <param name="Sigma">The noise level just left.</param>
public sealed record SamplerStep(int Step, int Count, int Timestep, Tensor Z, Tensor X0, double Sigma);

/// <summary>
/// The single entry point of every sampler: each is an update rule of <see cref="SamplerTable"/> run by
/// <see cref="SamplerDriver"/> on the levels of <see cref="SamplerOptions.ResolveSigmas"/> through one denoiser at noise
/// levels (<see cref="SigmaDenoiser.From"/>); DDPM and DDIM step on the levels of their trained timesteps like the others.
/// All are stateless. Sample i depends only on (seed, i): its initial noise and every step's noise come from
/// <see cref="SeededNoise"/> keyed by the sample index, never from the batch.
/// </summary>
public static class Sampler
{
    /// <summary>
    /// Generates samples <paramref name="first"/> … <paramref name="first"/> + <paramref name="count"/> − 1 of shape
    /// <paramref name="sampleShape"/>, in batches of at most <paramref name="batchSize"/>; the result is identical for every
    /// batch size. Returns a float32 tensor [count, ...sampleShape] owned by the caller.
    /// </summary>
    public static Tensor Generate(IDenoiser denoiser, NoiseSchedule schedule, long[] sampleShape, int count, ulong seed,
        SamplerOptions options, long first = 0, int batchSize = 4096, Action<SamplerStep>? onStep = null)
    {
        options.Validate();
        if (count < 1) throw new DiffuseException($"the number of samples must be at least 1 (got {count}).");
        var batches = new List<Tensor>();
        try
        {
            for (long start = first; start < first + count; start += batchSize)
            {
                int size = (int)Math.Min(batchSize, first + count - start);
                batches.Add(SampleBatch(denoiser, schedule, sampleShape, start, size, seed, options, onStep));
            }
            return batches.Count == 1 ? batches[0].alias() : cat(batches, 0);
        }
        finally
        {
            foreach (var b in batches) b.Dispose();
        }
    }

    /// <summary>
    /// Runs one batch of the sampler of <see cref="SamplerOptions.Kind"/> on <see cref="SamplerOptions.ResolveSigmas"/>
    /// (<see cref="SigmaSamplers.Run"/>). The noise is drawn on the CPU (it is a function of the seed and the sample
    /// index) and every tensor of the run lives on <paramref name="device"/>, the denoiser's (default the CPU). Each step
    /// reports the trained timestep nearest to its level.
    /// </summary>
    public static Tensor SampleBatch(IDenoiser denoiser, NoiseSchedule schedule, long[] sampleShape, long first, int size,
        ulong seed, SamplerOptions options, Action<SamplerStep>? onStep = null, Device? device = null)
    {
        double[] sigmas = options.ResolveSigmas(schedule);
        using var initial = SeededNoise.Normal(seed, StreamDomains.InitialNoise, first, size, sampleShape, device);
        Action<SamplerStep>? report = onStep is null ? null : step =>
            onStep(step with { Timestep = (int)Math.Round(schedule.TimestepOfSigma(step.Sigma), MidpointRounding.AwayFromZero) });
        return SigmaSamplers.Run(options.Kind, SigmaDenoiser.From(denoiser, schedule), initial, sigmas, new StepNoise(seed, first), options, report);
    }

    /// <summary>
    /// One ancestral step z_s = μ̃(z_t, x̂0) + σ·ξ, with the Bayes posterior mean μ̃ (Ho et al. 2020, eq. 7) and
    /// σ² = β̃ or β' = 1 − ᾱ_t/ᾱ_s; no noise is added on the final step to the data (ᾱ_s = 1).
    /// </summary>
    public static Tensor DdpmStep(Tensor z, Tensor x0, double alphaBar, double alphaBarPrev, DdpmVariance variance, Func<Tensor> noise) =>
        AncestralStep(z, x0, alphaBar, alphaBarPrev,
            post => Math.Sqrt(variance == DdpmVariance.Small ? post.Variance : post.StepBeta) * noise());

    /// <summary>
    /// The ancestral step with a learned variance (Nichol and Dhariwal 2021, eq. 15): σ² = exp(f·log β' + (1 − f)·log β̃)
    /// per element, with the respaced β' = 1 − ᾱ_t/ᾱ_s and its β̃ (§4), so a timestep subsequence uses the variances of
    /// the coarser process. f = 1 is the σ² = β' step, f = 0 the σ² = β̃ step.
    /// </summary>
    public static Tensor DdpmStep(Tensor z, Tensor x0, double alphaBar, double alphaBarPrev, Tensor varianceFraction, Func<Tensor> noise) =>
        AncestralStep(z, x0, alphaBar, alphaBarPrev, _ =>
        {
            var logVariance = LearnedVariance.LogVariance(varianceFraction.to_type(ScalarType.Float64), LearnedVariance.StepLogVariances(alphaBar, alphaBarPrev));
            return (0.5 * logVariance).exp().to_type(z.dtype) * noise();
        });

    /// <summary>μ̃(z_t, x̂0) plus the noise term the caller makes from the step's posterior; the mean alone on the final step to the data.</summary>
    private static Tensor AncestralStep(Tensor z, Tensor x0, double alphaBar, double alphaBarPrev, Func<PosteriorCoefficients, Tensor> noiseTerm)
    {
        var post = GaussianProcess.Posterior(alphaBar, alphaBarPrev);
        var mean = post.X0Coef * x0 + post.ZCoef * z;
        if (alphaBarPrev >= 1.0) return mean;
        return mean + noiseTerm(post);
    }

    /// <summary>
    /// One DDIM step (Song et al. 2021, eq. 12): z_s = √ᾱ_s·x̂0 + √(1 − ᾱ_s − σ²)·ε̂ + σ·ξ with
    /// σ = η·√((1 − ᾱ_s)/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_s) (eq. 16).
    /// </summary>
    public static Tensor DdimStep(Tensor x0, Tensor eps, double alphaBar, double alphaBarPrev, double eta, Func<Tensor> noise)
    {
        // At η = 0 the step is deterministic in either direction (from low to high noise the second root is imaginary).
        double sigma = eta == 0 ? 0 : eta * Math.Sqrt((1 - alphaBarPrev) / (1 - alphaBar)) * Math.Sqrt(1 - alphaBar / alphaBarPrev);
        var result = Math.Sqrt(alphaBarPrev) * x0 + Math.Sqrt(Math.Max(0, 1 - alphaBarPrev - sigma * sigma)) * eps;
        return sigma > 0 ? result + sigma * noise() : result;
    }
}
