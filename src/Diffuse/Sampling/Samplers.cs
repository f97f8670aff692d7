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
/// <param name="Steps">Number of steps; 0 means every trained timestep.</param>
/// <param name="Spacing">How the subsequence of timesteps is chosen.</param>
/// <param name="Eta">DDIM's η: 0 is deterministic, 1 matches DDPM's posterior variance.</param>
/// <param name="Variance">DDPM's reverse variance.</param>
/// <param name="ClipX0">When set, clamps the x0 estimate to [−ClipX0, ClipX0] at every step (and recomputes ε).</param>
/// <param name="TimestepList">An explicit list of timestep indices, overriding Steps and Spacing.</param>
public sealed record SamplerOptions(
    SamplerKind Kind = SamplerKind.Ddpm,
    int Steps = 0,
    TimestepSpacing Spacing = TimestepSpacing.Trailing,
    double Eta = 0.0,
    DdpmVariance Variance = DdpmVariance.Small,
    double? ClipX0 = null,
    int[]? TimestepList = null)
{
    /// <summary>The decreasing timestep indices this configuration visits for a schedule of <paramref name="trained"/> steps.</summary>
    public int[] ResolveTimesteps(int trained) =>
        TimestepList is { } list ? Timesteps.Validate(list, trained) : Timesteps.Select(trained, Steps, Spacing);

    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (Steps < 0) throw new DiffuseException($"--steps must be positive (got {Steps}).");
        if (Eta < 0 || double.IsNaN(Eta)) throw new DiffuseException($"--eta must be zero or positive (got {Eta}).");
        if (ClipX0 is { } c && !(c > 0)) throw new DiffuseException($"the x0 clip range must be positive (got {c}).");
    }
}

/// <summary>What a sampler reports after each step. Tensors are valid only during the callback: copy what you keep.</summary>
/// <param name="Step">Steps done so far (1 … Count).</param>
/// <param name="Count">Total number of steps.</param>
/// <param name="Timestep">The timestep index just left.</param>
/// <param name="Z">The state after the step.</param>
/// <param name="X0">The denoiser's x0 estimate at this step.</param>
public sealed record SamplerStep(int Step, int Count, int Timestep, Tensor Z, Tensor X0);

/// <summary>
/// Stateless samplers for discrete-time variance-preserving diffusion. Sample i depends only on (seed, i): its initial
/// noise and every step's noise come from <see cref="SeededNoise"/> keyed by the sample index, never from the batch.
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
    /// Nichol and Dhariwal 2021, §4) or DDIM steps (Song et al. 2021, eq. 12).
    /// </summary>
    public static Tensor SampleBatch(IDenoiser denoiser, NoiseSchedule schedule, long[] sampleShape, long first, int size,
        ulong seed, SamplerOptions options, Action<SamplerStep>? onStep = null)
    {
        int[] timesteps = options.ResolveTimesteps(schedule.Timesteps);
        using var noGrad = no_grad();
        // Stream 0 is the initial noise; stream k + 1 the noise of step k.
        var z = SeededNoise.Normal(seed, 0, first, size, sampleShape);
        for (int k = 0; k < timesteps.Length; k++)
        {
            using var scope = NewDisposeScope();
            int n = timesteps[k];
            int previous = k + 1 < timesteps.Length ? timesteps[k + 1] : -1;
            double alphaBar = schedule.AlphaBar(n), alphaBarPrev = schedule.AlphaBar(previous);
            var (x0, eps) = denoiser.Denoise(z, n);
            if (options.ClipX0 is { } clip)
            {
                x0 = x0.clamp(-clip, clip);
                eps = PredictionConversion.EpsFromX0(x0, z, tensor(alphaBar, dtype: z.dtype));
            }
            Tensor next = options.Kind switch
            {
                SamplerKind.Ddpm => DdpmStep(z, x0, alphaBar, alphaBarPrev, options.Variance, () => SeededNoise.Normal(seed, (ulong)k + 1, first, size, sampleShape)),
                SamplerKind.Ddim => DdimStep(x0, eps, alphaBar, alphaBarPrev, options.Eta, () => SeededNoise.Normal(seed, (ulong)k + 1, first, size, sampleShape)),
                _ => throw new ArgumentOutOfRangeException(nameof(options)),
            };
            onStep?.Invoke(new SamplerStep(k + 1, timesteps.Length, n, next, x0));
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
    public static Tensor DdpmStep(Tensor z, Tensor x0, double alphaBar, double alphaBarPrev, DdpmVariance variance, Func<Tensor> noise)
    {
        var post = GaussianProcess.Posterior(alphaBar, alphaBarPrev);
        var mean = post.X0Coef * x0 + post.ZCoef * z;
        if (alphaBarPrev >= 1.0) return mean;
        double sigma = Math.Sqrt(variance == DdpmVariance.Small ? post.Variance : post.StepBeta);
        return mean + sigma * noise();
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
