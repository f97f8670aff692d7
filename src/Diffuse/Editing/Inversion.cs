using Diffuse.Denoisers;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse.Editing;

/// <summary>
/// DDIM inversion (Song et al. 2021, §4.3; Dhariwal and Nichol 2021, App. F): the probability-flow ODE is a deterministic,
/// invertible map between data and noise, so a diffusion model is also an autoencoder whose encoder is fixed. Notation
/// map: σ_0 &gt; … &gt; σ_{N−1} &gt; σ_N = 0 the decoder's levels (<see cref="EditingPath.LatentLevels"/>); x the state in the
/// variance-exploding scale (x = x0 + σ·ε); z = x/√(1 + σ²) the variance-preserving state; the latent is z at σ_0, about
/// N(0, I) for data like the training data. <see cref="Decode"/> is a sampler run from the latent; <see cref="Encode"/>
/// is the same sampler run backwards, from σ_{N−1} up to σ_0 (<see cref="SigmaSamplers"/>), after a first step from the
/// data at σ = 0 to σ_{N−1} that inverts the decoder's last step x = D(x; σ_{N−1}): x_{N−1} solves
/// x − σ_{N−1}·ε̂(x; σ_{N−1}) = data, and one fixed-point iteration from x = data gives x_{N−1} = data + σ_{N−1}·ε̂(data; σ_{N−1})
/// (DDIM inversion's usual approximation, the one diffusers' inverse scheduler makes). With the exact denoiser of
/// Gaussian data, encode then decode is the identity up to the solver's error, which falls at the solver's order.
/// Guidance w ≠ 1 changes the ODE's field but not its invertibility; the drift of inversion under guidance comes from the
/// solver error growing with the field's stiffness (Mokady et al. 2023), measured in docs/results.md.
/// </summary>
public static class Inversion
{
    /// <summary>
    /// The latents z at σ_0 [B, ...] of <paramref name="data"/> (x at σ = 0, in model units) along <paramref name="path"/>
    /// (a deterministic sampler); owned by the caller. <paramref name="onStep"/> sees the N steps, the first one at σ = 0.
    /// </summary>
    /// <exception cref="DiffuseException">The sampler is not deterministic.</exception>
    public static Tensor Encode(ISigmaDenoiser denoiser, Tensor data, EditingPath path, SamplerOptions options, Action<SamplerStep>? onStep = null)
    {
        if (!EditingPath.IsDeterministic(path.Kind)) throw new DiffuseException($"inversion needs a deterministic sampler, not {SamplerNames.Name(path.Kind)}.");
        var levels = path.LatentLevels();
        int count = levels.Length - 1;
        double low = levels[^2];
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        // The first step: the inverse of the decoder's last step, linearised at the data.
        var eps = denoiser.DenoiseAtSigma(data / Math.Sqrt(1 + low * low), low).Eps;
        var x = data + low * eps;
        var z = x / Math.Sqrt(1 + low * low);
        if (onStep is not null) onStep(new SamplerStep(1, count, -1, z, data, 0));
        if (count > 1)
        {
            var upward = levels[..^1].Reverse().ToArray();
            Action<SamplerStep>? report = onStep is null ? null : step => onStep(step with { Step = step.Step + 1, Count = count });
            x = SigmaSamplers.Run(path.Kind, denoiser, z, upward, new StepNoise(0, 0), EditingPath.StepOptions(options), report);
            z = x / Math.Sqrt(1 + levels[0] * levels[0]);
        }
        return z.MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Images (x at σ = 0, model units) [B, ...] decoded from <paramref name="latents"/> (z at σ_0) along
    /// <paramref name="path"/>; owned by the caller.
    /// </summary>
    public static Tensor Decode(ISigmaDenoiser denoiser, Tensor latents, EditingPath path, SamplerOptions options, Action<SamplerStep>? onStep = null)
    {
        if (!EditingPath.IsDeterministic(path.Kind)) throw new DiffuseException($"decoding a latent needs a deterministic sampler, not {SamplerNames.Name(path.Kind)}.");
        return SigmaSamplers.Run(path.Kind, denoiser, latents, path.LatentLevels(), new StepNoise(0, 0), EditingPath.StepOptions(options), onStep);
    }
}
