using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Sampling;

/// <summary>
/// DDPM's ancestral step as a rule of <see cref="SamplerDriver"/> (Ho et al. 2020, Algorithm 2, on the σ grid of a
/// timestep subsequence as in Nichol and Dhariwal 2021, §4): in the variance-preserving variable, with
/// ᾱ = 1/(1 + σ²) of the step's two levels; the learned variance when the denoiser gives one, else
/// <see cref="SamplerOptions.Variance"/>. See <see cref="Sampler.DdpmStep(Tensor, Tensor, double, double, DdpmVariance, Func{Tensor})"/>.
/// </summary>
internal sealed class DdpmRule : ISamplerStepRule
{
    public StateScale Scale => StateScale.VariancePreserving;

    public SamplerStepResult Step(SamplerStepContext step)
    {
        var output = step.Evaluate(step.State, step.Sigma);
        var (z, x0) = (step.State, output.X0);
        double alphaBar = NoiseSchedule.AlphaBarOfSigma(step.Sigma), alphaBarNext = NoiseSchedule.AlphaBarOfSigma(step.SigmaNext);
        var next = output.VarianceFraction is { } fraction
            ? Sampler.DdpmStep(z, x0, alphaBar, alphaBarNext, fraction, () => step.Normal(x0))
            : Sampler.DdpmStep(z, x0, alphaBar, alphaBarNext, step.Options.Variance, () => step.Normal(x0));
        return new(next, x0);
    }

    public void Dispose() { }
}

/// <summary>
/// DDIM's step as a rule of <see cref="SamplerDriver"/> (Song et al. 2021, eq. 12 with σ of eq. 16 scaled by
/// <see cref="SamplerOptions.Eta"/>), in the variance-preserving variable. At η = 0 it is Euler's step in σ written in z.
/// See <see cref="Sampler.DdimStep"/>.
/// </summary>
internal sealed class DdimRule : ISamplerStepRule
{
    public StateScale Scale => StateScale.VariancePreserving;

    public SamplerStepResult Step(SamplerStepContext step)
    {
        var (x0, eps) = step.Evaluate(step.State, step.Sigma);
        double alphaBar = NoiseSchedule.AlphaBarOfSigma(step.Sigma), alphaBarNext = NoiseSchedule.AlphaBarOfSigma(step.SigmaNext);
        return new(Sampler.DdimStep(x0, eps, alphaBar, alphaBarNext, step.Options.Eta, () => step.Normal(x0)), x0);
    }

    public void Dispose() { }
}

/// <summary>Euler's method, or Heun's with its correction, with optional churn: see <see cref="SigmaSamplers.Euler"/> and <see cref="SigmaSamplers.Heun"/>.</summary>
internal sealed class EulerRule(bool heun) : ISamplerStepRule
{
    public StateScale Scale => StateScale.VarianceExploding;

    public SamplerStepResult Step(SamplerStepContext step)
    {
        var (x, sigma, sigmaNext, options) = (step.State, step.Sigma, step.SigmaNext, step.Options);
        // Churn (Algorithm 2, lines 4–6): lift x_i at σ_i to x̂ at σ̂ = σ_i·(1 + γ).
        double gamma = options.Churn?.Gamma(sigma, step.Count) ?? 0;
        double sigmaHat = sigma * (1 + gamma);
        var xHat = gamma > 0
            ? x + options.Churn!.SNoise * Math.Sqrt(sigmaHat * sigmaHat - sigma * sigma) * step.Normal(x)
            : x;
        // Euler step (lines 7–8), written as D + σ_{i+1}·ε̂ so that it also holds from σ̂ = ∞.
        var (x0, eps) = step.Evaluate(xHat, sigmaHat);
        var next = x0 + sigmaNext * eps;
        if (heun && sigmaNext > 0 && !double.IsPositiveInfinity(sigmaHat))
        {
            // Heun's correction (lines 9–11): average the slopes at both ends.
            var (_, epsNext) = step.Evaluate(next, sigmaNext);
            next = xHat + (sigmaNext - sigmaHat) * 0.5 * (eps + epsNext);
        }
        return new(next, x0);
    }

    public void Dispose() { }
}

/// <summary>The ancestral step in σ: see <see cref="SigmaSamplers.EulerAncestral"/>.</summary>
internal sealed class EulerAncestralRule : ISamplerStepRule
{
    public StateScale Scale => StateScale.VarianceExploding;

    public SamplerStepResult Step(SamplerStepContext step)
    {
        double sigma = step.Sigma, sigmaNext = step.SigmaNext;
        var (x0, eps) = step.Evaluate(step.State, sigma);
        if (sigmaNext == 0) return new(x0, x0);
        double ratio = sigmaNext / sigma;
        double sigmaUp = sigmaNext * Math.Sqrt(1 - ratio * ratio), sigmaDown = sigmaNext * ratio;
        return new(x0 + sigmaDown * eps + sigmaUp * step.Normal(x0), x0);
    }

    public void Dispose() { }
}
