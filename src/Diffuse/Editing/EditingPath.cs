using Diffuse.Sampling;
using Diffuse.Schedules;

namespace Diffuse.Editing;

/// <summary>
/// The σ-space sampler and the noise levels an editing operation runs on, from <see cref="SamplerOptions"/>. Editing
/// drives the samplers of <see cref="SigmaSamplers"/> only, so every option maps onto one of them: DDIM with η = 0 is
/// Euler on the levels of its trained timesteps (Song et al. 2021, §4.3; equal to float rounding, see
/// <c>SigmaSamplerTests</c>) and DDPM with σ² = β̃ is Euler ancestral on the same levels. No new sampler is written here.
/// </summary>
/// <param name="Kind">The σ-space sampler.</param>
/// <param name="Sigmas">The decoder's levels σ_0 &gt; … &gt; σ_N = 0 (the encoder walks them backwards).</param>
public sealed record EditingPath(SamplerKind Kind, double[] Sigmas)
{
    /// <summary>The deterministic samplers (those whose row of <see cref="SamplerTable"/> draws no noise): they solve the probability-flow ODE, and so can run backwards.</summary>
    public static bool IsDeterministic(SamplerKind kind) => !SamplerTable.Of(kind).DrawsNoise;

    /// <summary>Number of steps of the path.</summary>
    public int Steps => Sigmas.Length - 1;

    /// <summary>
    /// The path of <paramref name="options"/> under <paramref name="schedule"/>; with <paramref name="deterministic"/>
    /// a stochastic sampler (or churn, or DDIM with η &gt; 0) is refused.
    /// </summary>
    /// <exception cref="DiffuseException">The options are invalid, or stochastic where a deterministic path is needed.</exception>
    public static EditingPath Resolve(SamplerOptions options, NoiseSchedule schedule, bool deterministic)
    {
        options.Validate();
        string name = SamplerNames.Name(options.Kind);
        if (deterministic && (!IsDeterministic(options.Kind) || options.Churn is not null || options.Eta != 0))
            throw new DiffuseException($"inversion needs a deterministic sampler ({string.Join(", ", SamplerTable.All.Where(d => !d.DrawsNoise).Select(d => d.Name))}, without η or churn); {Param.Of("SamplerNames.Parse(name)", "the sampler name")} {name} adds noise, so the image could not be recovered from its latent.");
        if (options.Kind == SamplerKind.Ddim && options.Eta != 0)
            throw new DiffuseException($"editing runs ddim at {Param.Of("SamplerOptions.Eta")} 0 (as Euler on its timesteps); for noise on the way choose euler-ancestral or dpm++2m-sde.");
        if (options.Kind == SamplerKind.Ddpm && options.Variance != DdpmVariance.Small)
            throw new DiffuseException("editing runs ddpm as Euler ancestral (σ² = β̃); the large variance is not available here: choose the small one.");
        var kind = options.Kind switch
        {
            SamplerKind.Ddim => SamplerKind.Euler,
            SamplerKind.Ddpm => SamplerKind.EulerAncestral,
            var k => k,
        };
        return new EditingPath(kind, options.ResolveSigmas(schedule));
    }

    /// <summary>
    /// The levels of the latent space: the decoder's levels without a leading σ = ∞ (under zero terminal SNR the latent
    /// lives at the largest finite level, since the step from pure noise cannot be inverted), ending with 0.
    /// </summary>
    public double[] LatentLevels() =>
        double.IsPositiveInfinity(Sigmas[0]) ? (Sigmas.Length > 2 ? Sigmas[1..] : throw new DiffuseException("inversion needs at least one finite noise level: give more steps.")) : Sigmas;

    /// <summary>The options the σ-space samplers read (x0 clipping and churn); the path fixes the sampler and levels.</summary>
    internal static SamplerOptions StepOptions(SamplerOptions options) => new(SamplerKind.Euler, ClipX0: options.ClipX0, Churn: options.Churn);
}
