using Diffuse.Denoisers;
using Diffuse.Parameterization;
using Diffuse.Randomness;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse.Editing;

/// <summary>
/// RePaint's resampling schedule (Lugmayr et al. 2022, §4.2): the levels are walked in blocks of <paramref name="Jump"/>
/// steps; each block is run <paramref name="Resample"/> times, jumping back up to its first level with fresh forward
/// noise between runs, so the generated region has time to agree with the known one. Resample 1 is the plain
/// replacement method. The paper uses jump 10 and 10 resamplings over 250 steps.
/// </summary>
/// <param name="Resample">Runs of every block (R ≥ 1).</param>
/// <param name="Jump">Steps per block (J ≥ 1).</param>
public sealed record RePaintSchedule(int Resample = 1, int Jump = 10)
{
    /// <summary>Throws a <see cref="DiffuseException"/> naming the first invalid value.</summary>
    public void Validate()
    {
        if (Resample < 1) throw new DiffuseException($"{Param.Of("RePaintSchedule.Resample")} must be at least 1 (got {Resample}).");
        if (Jump < 1) throw new DiffuseException($"{Param.Of("RePaintSchedule.Jump")} must be at least 1 (got {Jump}).");
    }

    /// <summary>The sampler steps this schedule makes on a path of <paramref name="steps"/> steps (every block R times).</summary>
    public int StepCount(int steps) => Resample * steps;
}

/// <summary>
/// The replacement method of inpainting (Song et al. 2021, App. I.2; Lugmayr et al. 2022, §4.1) written as a denoiser:
/// x̂0 = m·x_known + (1 − m)·D(x; σ) with the mask m (1 = keep, 0 = fill) and ε̂ recomputed from it. Every sampler step
/// moves the state towards its x0 estimate, so the known pixels of the state follow the forward process q(x_σ | x_known)
/// (with the noise the state already carries, and for ancestral samplers fresh noise of the right variance), the
/// network sees them at every level, and the last step to σ = 0 returns x_known exactly where m = 1. A decorator, so every
/// sampler, guidance and clamp works unchanged, and multistep solvers keep their history.
/// </summary>
public sealed class KnownRegionDenoiser : ISigmaDenoiser
{
    private readonly ISigmaDenoiser _inner;
    private readonly Tensor _known;
    private readonly Tensor _mask;

    /// <summary>Wraps <paramref name="inner"/>: <paramref name="known"/> [B, ...] where <paramref name="mask"/> (broadcastable, 0 or 1) is 1.</summary>
    public KnownRegionDenoiser(ISigmaDenoiser inner, Tensor known, Tensor mask)
    {
        _inner = inner;
        _known = known;
        _mask = mask;
    }

    /// <inheritdoc />
    public DenoiserOutput DenoiseAtSigma(Tensor z, double sigma)
    {
        using var scope = NewDisposeScope();
        var inner = _inner.DenoiseAtSigma(z, sigma);
        var x0 = where(_mask > 0.5, _known, inner.X0);
        var eps = PredictionConversion.EpsFromX0(x0, z, tensor(1 / (1 + sigma * sigma), dtype: z.dtype, device: z.device));
        return new DenoiserOutput(x0.MoveToOuterDisposeScope(), eps.MoveToOuterDisposeScope());
    }
}

/// <summary>
/// Inpainting: fills the region where the mask is 0 so that it agrees with the known pixels (mask 1), by the
/// replacement method (<see cref="KnownRegionDenoiser"/>) and RePaint's resampling (<see cref="RePaintSchedule"/>).
/// Notation map: σ_0 &gt; … &gt; σ_N = 0 the levels; x = z·√(1 + σ²) the variance-exploding state; a jump from σ_b back up to
/// σ_a &gt; σ_b adds forward noise, x_a = x_b + √(σ_a² − σ_b²)·ξ (Lugmayr et al. 2022, eq. 8 in this scale). The run
/// starts from sampling's initial noise (stream 0 of (seed, sample index)); with R = 1 it is one sampler run over every
/// level, so an empty mask gives exactly the model's sample for that seed.
/// </summary>
public static class Inpainting
{
    /// <summary>
    /// Completes <paramref name="known"/> (model units [B, ...]) outside <paramref name="mask"/> (1 keep, 0 fill; [B, ...] or
    /// broadcastable) along <paramref name="path"/>; owned by the caller.
    /// </summary>
    public static Tensor Run(ISigmaDenoiser denoiser, Tensor known, Tensor mask, EditingPath path, SamplerOptions options, RePaintSchedule schedule,
        ulong seed, long first = 0, Action<SamplerStep>? onStep = null)
    {
        schedule.Validate();
        var stepOptions = EditingPath.StepOptions(options);
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var guided = new KnownRegionDenoiser(denoiser, known, mask.to_type(known.dtype));
        var z = SeededNoise.Normal(seed, StreamDomains.InitialNoise, first, (int)known.shape[0], known.shape.AsSpan(1), known.device).to_type(known.dtype);
        var sigmas = path.Sigmas;
        int steps = path.Steps, total = schedule.StepCount(steps), done = 0;
        Action<SamplerStep>? report = onStep is null ? null : step => onStep(step with { Step = ++done, Count = total });
        if (schedule.Resample == 1)
            return SigmaSamplers.Run(path.Kind, guided, z, sigmas, new StepNoise(seed, first), stepOptions, report).MoveToOuterDisposeScope();
        ulong pass = 0, jump = 0;
        Tensor x = z;
        for (int a = 0; a < steps; a += schedule.Jump)
        {
            int b = Math.Min(a + schedule.Jump, steps);
            double high = sigmas[a], low = sigmas[b];
            var block = sigmas[a..(b + 1)];
            // From σ = ∞ (zero terminal SNR) there is nothing to resample: pure noise does not depend on the image.
            int runs = double.IsPositiveInfinity(high) ? 1 : schedule.Resample;
            var start = z;
            for (int r = 0; r < runs; r++)
            {
                var stepNoise = new StepNoise(NoiseDomains.Seed(seed, NoiseDomain.RePaintSteps, pass++), first);
                x = SigmaSamplers.Run(path.Kind, guided, start, block, stepNoise, stepOptions, report);
                if (r < runs - 1)
                {
                    var xi = SeededNoise.Normal(NoiseDomains.Seed(seed, NoiseDomain.RePaintJumps, jump++), StreamDomains.InitialNoise, first, (int)x.shape[0], x.shape.AsSpan(1), x.device).to_type(x.dtype);
                    start = (x + Math.Sqrt(high * high - low * low) * xi) / Math.Sqrt(1 + high * high);
                }
                else
                {
                    done += (schedule.Resample - runs) * (b - a);
                }
            }
            z = low == 0 ? x : x / Math.Sqrt(1 + low * low);
        }
        return x.MoveToOuterDisposeScope();
    }
}
