using Diffuse.Denoisers;
using Diffuse.Randomness;
using Diffuse.Sampling;
using static TorchSharp.torch;

namespace Diffuse.Editing;

/// <summary>
/// SDEdit (Meng et al. 2022, Algorithm 1): noise an image part of the way to pure noise and let a sampler denoise it, so
/// that the result keeps the image's coarse structure (drowned last by the noise) and the model redraws its detail,
/// towards the class and guidance of the denoiser. Notation map: s ∈ (0, 1] the strength; σ_0 &gt; … &gt; σ_N = 0 the
/// sampler's levels; k = ⌈s·N⌉ the steps that run (the last k, as diffusers' img2img does), starting at σ_{N−k};
/// z = √ᾱ·x + √(1 − ᾱ)·ε with ᾱ = 1/(1 + σ²) the noised image at that level. At s = 1 the start is the sampler's prior
/// itself, z = ε (the image's weight √ᾱ_max, 0.006 for the linear schedule, is dropped as sampling drops it), so
/// SDEdit at strength 1 is sampling from the same noise. The noise ε is stream 0 of (seed, sample index), sampling's
/// initial noise, and step i of the k draws its noise as sampling's step N − k + i would.
/// </summary>
public static class ImageToImage
{
    /// <summary>The number of the path's <paramref name="steps"/> that SDEdit runs at <paramref name="strength"/>: ⌈s·N⌉, at least 1.</summary>
    /// <exception cref="DiffuseException">The strength is outside (0, 1].</exception>
    public static int StepsAt(double strength, int steps)
    {
        if (!(strength > 0 && strength <= 1))
            throw new DiffuseException($"{Param.Of("ImageToImage.Run(strength)", "the strength")} must be in (0, 1]: 0 keeps the image, 1 redraws it from pure noise (got {strength}).");
        return Math.Clamp((int)Math.Ceiling(strength * steps - 1e-9), 1, steps);
    }

    /// <summary>
    /// Edits <paramref name="data"/> (model units, rows <paramref name="first"/> … of <paramref name="seed"/>'s noise) at
    /// <paramref name="strength"/> along <paramref name="path"/>; owned by the caller.
    /// </summary>
    /// <exception cref="DiffuseException">The strength is outside (0, 1].</exception>
    public static Tensor Run(ISigmaDenoiser denoiser, Tensor data, double strength, EditingPath path, SamplerOptions options, ulong seed,
        long first = 0, Action<SamplerStep>? onStep = null)
    {
        int k = StepsAt(strength, path.Steps);
        int skipped = path.Steps - k;
        double sigma = path.Sigmas[skipped];
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        var noise = SeededNoise.Normal(seed, StreamDomains.InitialNoise, first, (int)data.shape[0], data.shape.AsSpan(1), data.device).to_type(data.dtype);
        var start = skipped == 0 ? noise : Forward(data, sigma, noise);
        var result = SigmaSamplers.Run(path.Kind, denoiser, start, path.Sigmas[skipped..], new StepNoise(seed, first, skipped),
            EditingPath.StepOptions(options), onStep);
        return result.MoveToOuterDisposeScope();
    }

    /// <summary>The forward process at level σ in the variance-preserving scale: √ᾱ·x + √(1 − ᾱ)·ε with ᾱ = 1/(1 + σ²) (ε itself at σ = ∞).</summary>
    public static Tensor Forward(Tensor data, double sigma, Tensor noise)
    {
        if (double.IsPositiveInfinity(sigma)) return noise.alias();
        double alphaBar = 1 / (1 + sigma * sigma);
        return Math.Sqrt(alphaBar) * data + Math.Sqrt(1 - alphaBar) * noise;
    }
}
