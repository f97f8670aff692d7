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

/// <summary>The names of the samplers on the command line and in reports.</summary>
public static class SamplerNames
{
    private static readonly (SamplerKind Kind, string Name)[] Table =
    {
        (SamplerKind.Ddpm, "ddpm"), (SamplerKind.Ddim, "ddim"), (SamplerKind.Euler, "euler"), (SamplerKind.Heun, "heun"),
        (SamplerKind.EulerAncestral, "euler-ancestral"), (SamplerKind.DpmSolver2M, "dpm++2m"),
        (SamplerKind.DpmSolver3M, "dpm++3m"), (SamplerKind.DpmSolver2MSde, "dpm++2m-sde"), (SamplerKind.UniPc, "unipc"),
    };

    /// <summary>Every name, in the order of <see cref="SamplerKind"/>.</summary>
    public static IReadOnlyList<string> All { get; } = Table.Select(e => e.Name).ToArray();

    /// <summary>The name of <paramref name="kind"/> (e.g. "dpm++2m").</summary>
    public static string Name(SamplerKind kind) => Table.First(e => e.Kind == kind).Name;

    /// <summary>
    /// The sampler called <paramref name="name"/> (case-insensitive); throws a <see cref="DiffuseException"/> listing the
    /// names otherwise, in which <paramref name="option"/> (default: the sampler name) names the value.
    /// </summary>
    public static SamplerKind Parse(string name, string? option = null)
    {
        string key = name.Trim();
        foreach (var (kind, candidate) in Table)
            if (string.Equals(candidate, key, StringComparison.OrdinalIgnoreCase)) return kind;
        throw new DiffuseException($"{option ?? Param.Of("SamplerNames.Parse(name)", "the sampler name")} must be one of {string.Join(", ", All)} (got '{name}').");
    }

    /// <summary>Whether <paramref name="kind"/> steps on noise levels σ (every sampler except DDPM and DDIM, which step on trained timesteps).</summary>
    public static bool UsesNoiseLevels(SamplerKind kind) => kind is not (SamplerKind.Ddpm or SamplerKind.Ddim);
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
/// <param name="Kind">The algorithm.</param>
/// <param name="Steps">Number of steps; 0 means as many as there are trained timesteps.</param>
/// <param name="Spacing">How the subsequence of timesteps is chosen (also the σ-space samplers' levels when <paramref name="Sigmas"/> is <see cref="NoiseLevelSpacing.Timesteps"/>).</param>
/// <param name="Eta">DDIM's η: 0 is deterministic, 1 matches DDPM's posterior variance.</param>
/// <param name="Variance">DDPM's reverse variance.</param>
/// <param name="ClipX0">When set, clamps the x0 estimate to [−ClipX0, ClipX0] at every step (and recomputes ε).</param>
/// <param name="TimestepList">An explicit list of timestep indices, overriding Steps and Spacing.</param>
/// <param name="Sigmas">How the σ-space samplers choose their noise levels.</param>
/// <param name="SigmaList">An explicit decreasing list of noise levels for the σ-space samplers (a final 0 is added when missing), overriding Steps and Sigmas.</param>
/// <param name="Rho">ρ of the Karras spacing.</param>
/// <param name="Churn">Stochastic churn for the Euler and Heun samplers (off when null).</param>
public sealed record SamplerOptions(
    SamplerKind Kind = SamplerKind.Ddpm,
    int Steps = 0,
    TimestepSpacing Spacing = TimestepSpacing.Trailing,
    double Eta = 0.0,
    DdpmVariance Variance = DdpmVariance.Small,
    double? ClipX0 = null,
    int[]? TimestepList = null,
    NoiseLevelSpacing Sigmas = NoiseLevelSpacing.Timesteps,
    double[]? SigmaList = null,
    double Rho = 7,
    StochasticChurn? Churn = null)
{
    /// <summary>The decreasing timestep indices this configuration visits for a schedule of <paramref name="trained"/> steps.</summary>
    public int[] ResolveTimesteps(int trained) =>
        TimestepList is { } list ? Timesteps.Validate(list, trained) : Timesteps.Select(trained, Steps, Spacing);

    /// <summary>
    /// The decreasing noise levels σ_0 &gt; … &gt; σ_N = 0 a σ-space sampler visits under <paramref name="schedule"/>:
    /// <see cref="SigmaList"/>, else the levels of <see cref="Sigmas"/> for <see cref="Steps"/> steps (0: T steps).
    /// </summary>
    public double[] ResolveSigmas(NoiseSchedule schedule)
    {
        double[] sigmas;
        if (SigmaList is { } list) sigmas = NoiseLevels.Validate(list);
        else
        {
            int steps = Steps == 0 ? schedule.Timesteps : Steps;
            sigmas = Sigmas switch
            {
                NoiseLevelSpacing.Timesteps => NoiseLevels.FromTimesteps(schedule, ResolveTimesteps(schedule.Timesteps)),
                NoiseLevelSpacing.Karras => NoiseLevels.Karras(schedule, steps, Rho),
                NoiseLevelSpacing.LogSnr => NoiseLevels.LogSnr(schedule, steps),
                _ => throw new ArgumentOutOfRangeException(nameof(Sigmas)),
            };
        }
        if (double.IsPositiveInfinity(sigmas[0]) && !schedule.HasZeroTerminalSnr)
            throw new DiffuseException("the noise levels start at ∞ (pure noise), which needs a schedule with zero terminal SNR.");
        return sigmas;
    }

    /// <summary>The number of steps (and of step callbacks) this configuration makes under <paramref name="schedule"/>.</summary>
    public int StepCount(NoiseSchedule schedule) =>
        SamplerNames.UsesNoiseLevels(Kind) ? ResolveSigmas(schedule).Length - 1 : ResolveTimesteps(schedule.Timesteps).Length;

    /// <summary>
    /// The number of network evaluations (NFE) one sample costs under <paramref name="schedule"/>: one per step except
    /// for Heun (see <see cref="SigmaSamplers.FunctionEvaluations"/>). Samplers are compared at equal NFE.
    /// </summary>
    public int FunctionEvaluations(NoiseSchedule schedule) =>
        SamplerNames.UsesNoiseLevels(Kind) ? SigmaSamplers.FunctionEvaluations(Kind, ResolveSigmas(schedule)) : StepCount(schedule);

    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid option or combination.</summary>
    public void Validate()
    {
        if (Steps < 0) throw new DiffuseException($"{Param.Of("SamplerOptions.Steps")} must be positive (got {Steps}).");
        // σ_t = η·√((1 − ᾱ_{t−1})/(1 − ᾱ_t))·√(1 − ᾱ_t/ᾱ_{t−1}) (Song et al. 2021, eq. 16): above η = 1 the direction term
        // √(1 − ᾱ_{t−1} − σ_t²) is the root of a negative number at some steps.
        if (!(Eta >= 0 && Eta <= 1)) throw new DiffuseException($"{Param.Of("SamplerOptions.Eta")} must lie in [0, 1]: 0 is deterministic DDIM, 1 as stochastic as DDPM (got {Eta}).");
        if (ClipX0 is { } c && !(c > 0)) throw new DiffuseException($"the x0 clip range must be positive (got {c}).");
        if (!(Rho > 0) || double.IsInfinity(Rho)) throw new DiffuseException($"{Param.Of("SamplerOptions.Rho")} must be positive (got {Rho}).");
        string name = SamplerNames.Name(Kind);
        if (Eta != 0 && Kind != SamplerKind.Ddim) throw new DiffuseException($"{Param.Of("SamplerOptions.Eta")} applies to ddim only, not to {name}.");
        if (TimestepList is not null && SigmaList is not null) throw new DiffuseException("give either a timestep list or a noise-level list, not both.");
        if (!SamplerNames.UsesNoiseLevels(Kind) && (Sigmas != NoiseLevelSpacing.Timesteps || SigmaList is not null))
            throw new DiffuseException($"{name} steps on trained timesteps: choose them with {Param.Of("SamplerOptions.Spacing")}; {Param.Of("SamplerOptions.Sigmas")} karras, logsnr or a list need a σ-space sampler ({string.Join(", ", SamplerNames.All.Where(n => n is not ("ddpm" or "ddim")))}).");
        if (SigmaList is not null && Sigmas != NoiseLevelSpacing.Timesteps)
            throw new DiffuseException("give either a noise-level spacing or a noise-level list, not both.");
        if (Churn is not null)
        {
            if (Kind is not (SamplerKind.Euler or SamplerKind.Heun)) throw new DiffuseException($"stochastic churn applies to euler and heun, not to {name}.");
            Churn.Validate();
        }
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
/// The single entry point of every sampler: DDPM and DDIM step on trained timesteps of the variance-preserving process,
/// the others (<see cref="SigmaSamplers"/>) on noise levels σ through the same denoiser (<see cref="SigmaDenoiser.From"/>).
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
    /// Runs one batch: DDPM ancestral steps (Ho et al. 2020, Algorithm 2, generalised to a subsequence of timesteps as in
    /// Nichol and Dhariwal 2021, §4), DDIM steps (Song et al. 2021, eq. 12), or a σ-space sampler of
    /// <see cref="SigmaSamplers"/> on <see cref="SamplerOptions.ResolveSigmas"/>. The noise is drawn on the CPU (it is a
    /// function of the seed and the sample index) and every tensor of the run lives on <paramref name="device"/>, the
    /// denoiser's (default the CPU).
    /// </summary>
    public static Tensor SampleBatch(IDenoiser denoiser, NoiseSchedule schedule, long[] sampleShape, long first, int size,
        ulong seed, SamplerOptions options, Action<SamplerStep>? onStep = null, Device? device = null)
    {
        if (SamplerNames.UsesNoiseLevels(options.Kind))
        {
            double[] sigmas = options.ResolveSigmas(schedule);
            using var initial = SeededNoise.Normal(seed, StreamDomains.InitialNoise, first, size, sampleShape, device);
            Action<SamplerStep>? report = onStep is null ? null : step =>
                onStep(step with { Timestep = (int)Math.Round(schedule.TimestepOfSigma(step.Sigma), MidpointRounding.AwayFromZero) });
            return SigmaSamplers.Run(options.Kind, SigmaDenoiser.From(denoiser, schedule), initial, sigmas, new StepNoise(seed, first), options, report);
        }
        int[] timesteps = options.ResolveTimesteps(schedule.Timesteps);
        denoiser = ClampedDenoiser.Clip(denoiser, schedule, options.ClipX0);
        using var noGrad = no_grad();
        // Stream 0 is the initial noise; stream k + 1 the noise of step k.
        var z = SeededNoise.Normal(seed, StreamDomains.InitialNoise, first, size, sampleShape, device);
        for (int k = 0; k < timesteps.Length; k++)
        {
            using var scope = NewDisposeScope();
            int n = timesteps[k];
            int previous = k + 1 < timesteps.Length ? timesteps[k + 1] : -1;
            double alphaBar = schedule.AlphaBar(n), alphaBarPrev = schedule.AlphaBar(previous);
            var output = denoiser.Denoise(z, n);
            var (x0, eps) = output;
            Tensor next = options.Kind switch
            {
                SamplerKind.Ddpm => output.VarianceFraction is { } fraction
                    ? DdpmStep(z, x0, alphaBar, alphaBarPrev, fraction, () => SeededNoise.Normal(seed, StreamDomains.FirstStepNoise + (ulong)k, first, size, sampleShape, device))
                    : DdpmStep(z, x0, alphaBar, alphaBarPrev, options.Variance, () => SeededNoise.Normal(seed, StreamDomains.FirstStepNoise + (ulong)k, first, size, sampleShape, device)),
                SamplerKind.Ddim => DdimStep(x0, eps, alphaBar, alphaBarPrev, options.Eta, () => SeededNoise.Normal(seed, StreamDomains.FirstStepNoise + (ulong)k, first, size, sampleShape, device)),
                _ => throw new DiffuseException($"{options.Kind} is not a timestep sampler."),
            };
            onStep?.Invoke(new SamplerStep(k + 1, timesteps.Length, n, next, x0, schedule.Sigma(n)));
            var old = z;
            z = next.MoveToOuterDisposeScope();
            old.Dispose();
        }
        return z;
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
        double sigma = eta * Math.Sqrt((1 - alphaBarPrev) / (1 - alphaBar)) * Math.Sqrt(1 - alphaBar / alphaBarPrev);
        var result = Math.Sqrt(alphaBarPrev) * x0 + Math.Sqrt(Math.Max(0, 1 - alphaBarPrev - sigma * sigma)) * eps;
        return sigma > 0 ? result + sigma * noise() : result;
    }
}
