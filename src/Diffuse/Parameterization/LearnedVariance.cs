using Diffuse.Schedules;
using static TorchSharp.torch;

namespace Diffuse.Parameterization;

/// <summary>
/// Learned reverse-process variances (Nichol and Dhariwal 2021, §3.1, eq. 15): the network outputs, beside its ε, x0 or v
/// prediction, a value v per element that interpolates the log-variance of each reverse step between its two natural
/// bounds, log Σ = f·log β + (1 − f)·log β̃ with f = (v + 1)/2. Notation map: for a step from level t down to s,
/// β = 1 − ᾱ_t/ᾱ_s (the forward variance of that step; for consecutive timesteps β_t, for a subsequence the respaced
/// β of §4) and β̃ = (1 − ᾱ_s)/(1 − ᾱ_t)·β the Bayes posterior variance (<see cref="GaussianProcess.Posterior"/>).
/// </summary>
public static class LearnedVariance
{
    /// <summary>
    /// Nichol and Dhariwal 2021, §3.1: splits a network output [B, 2C, ...] along dimension 1 into the prediction
    /// [B, C, ...] (ε, x0 or v) and the variance output v [B, C, ...]. Throws a <see cref="DiffuseException"/> when the
    /// output does not have twice the <paramref name="channels"/> of the input.
    /// </summary>
    public static (Tensor Prediction, Tensor V) Split(Tensor output, long channels)
    {
        if (output.dim() < 2 || output.shape[1] != 2 * channels)
            throw new DiffuseException($"a model that learns its variance outputs twice the input's {channels} channels, but this network outputs {(output.dim() < 2 ? 0 : output.shape[1])}; build it with an output multiplier of 2 (for the U-Net, UNetConfig.OutputChannelsMultiplier = 2).");
        return (output.narrow(1, 0, channels), output.narrow(1, channels, channels));
    }

    /// <summary>Nichol and Dhariwal 2021, §3.1: the interpolation fraction f = (v + 1)/2 of a raw variance output v ∈ (−∞, ∞).</summary>
    public static Tensor Fraction(Tensor v) => (v + 1) * 0.5;

    /// <summary>Nichol and Dhariwal 2021, eq. 15: log Σ = f·log β + (1 − f)·log β̃, elementwise, for one step's bounds.</summary>
    public static Tensor LogVariance(Tensor fraction, double logBeta, double logPosteriorVariance) =>
        fraction * logBeta + (1 - fraction) * logPosteriorVariance;

    /// <summary>Nichol and Dhariwal 2021, eq. 15 for the bounds of one step as <see cref="StepLogVariances(NoiseSchedule, int)"/> returns them.</summary>
    public static Tensor LogVariance(Tensor fraction, (double LogBeta, double LogPosteriorVariance) bounds) =>
        LogVariance(fraction, bounds.LogBeta, bounds.LogPosteriorVariance);

    /// <summary>Nichol and Dhariwal 2021, eq. 15, with bounds per row (tensors broadcasting against <paramref name="fraction"/>).</summary>
    public static Tensor LogVariance(Tensor fraction, Tensor logBeta, Tensor logPosteriorVariance) =>
        fraction * logBeta + (1 - fraction) * logPosteriorVariance;

    /// <summary>
    /// Nichol and Dhariwal 2021, §3.1 and §4: the bounds (log β, log β̃) of the reverse step from ᾱ_t down to ᾱ_s, with the
    /// respaced β = 1 − ᾱ_t/ᾱ_s, so that a timestep subsequence uses the variances of the coarser process. On the step to
    /// the data (ᾱ_s = 1) β̃ is 0; as in the paper's code its log is clipped to the β̃ of the step above, from
    /// <paramref name="alphaBarAbove"/> down to ᾱ_t (or to β when there is none, NaN).
    /// </summary>
    public static (double LogBeta, double LogPosteriorVariance) StepLogVariances(double alphaBarT, double alphaBarS, double alphaBarAbove = double.NaN)
    {
        var post = GaussianProcess.Posterior(alphaBarT, alphaBarS);
        double logBeta = Math.Log(post.StepBeta);
        if (alphaBarS < 1) return (logBeta, Math.Log(post.Variance));
        return (logBeta, double.IsNaN(alphaBarAbove) ? logBeta : Math.Log(GaussianProcess.Posterior(alphaBarAbove, alphaBarT).Variance));
    }

    /// <summary>
    /// The bounds of <see cref="StepLogVariances(double, double, double)"/> for the consecutive step from timestep index
    /// <paramref name="timestep"/> to the one below (index −1 being the data), clipped at index 0 to the β̃ of index 1.
    /// </summary>
    public static (double LogBeta, double LogPosteriorVariance) StepLogVariances(NoiseSchedule schedule, int timestep) =>
        StepLogVariances(schedule.AlphaBar(timestep), schedule.AlphaBar(timestep - 1),
            timestep + 1 < schedule.Timesteps ? schedule.AlphaBar(timestep + 1) : double.NaN);
}
