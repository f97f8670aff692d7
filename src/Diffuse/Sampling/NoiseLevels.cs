using Diffuse.Schedules;

namespace Diffuse.Sampling;

/// <summary>
/// Decreasing lists of noise levels σ_0 &gt; σ_1 &gt; … &gt; σ_{N−1} &gt; σ_N = 0 for N sampler steps. Under zero terminal
/// SNR the trained σ_max is +∞: the list then starts at +∞ (pure noise) and the remaining N − 1 levels follow the
/// spacing from the largest finite trained level down to σ_min.
/// </summary>
public static class NoiseLevels
{
    /// <summary>
    /// Karras et al. 2022, eq. 5: σ_i = (σ_max^(1/ρ) + i/(N − 1)·(σ_min^(1/ρ) − σ_max^(1/ρ)))^ρ for i = 0 … N − 1, then
    /// σ_N = 0. Larger ρ concentrates steps at low noise; ρ = 7 balances the truncation error over the trajectory.
    /// </summary>
    public static double[] Karras(int steps, double sigmaMin, double sigmaMax, double rho = 7)
    {
        CheckRange(steps, sigmaMin, sigmaMax);
        if (!(rho > 0)) throw new DiffuseException($"ρ must be positive (got {rho}).");
        double start = Math.Pow(sigmaMax, 1 / rho), end = Math.Pow(sigmaMin, 1 / rho);
        return Ramp(steps, i => Math.Pow(start + i * (end - start), rho), sigmaMin, sigmaMax);
    }

    /// <summary>Uniform log-SNR: σ_i = exp(log σ_max + i/(N − 1)·(log σ_min − log σ_max)) for i = 0 … N − 1, then 0.</summary>
    public static double[] LogSnr(int steps, double sigmaMin, double sigmaMax)
    {
        CheckRange(steps, sigmaMin, sigmaMax);
        double start = Math.Log(sigmaMax), end = Math.Log(sigmaMin);
        return Ramp(steps, i => Math.Exp(start + i * (end - start)), sigmaMin, sigmaMax);
    }

    /// <summary><see cref="Karras(int, double, double, double)"/> between the trained σ_min = σ(timestep 0) and σ_max.</summary>
    public static double[] Karras(NoiseSchedule schedule, int steps, double rho = 7) =>
        FromSchedule(schedule, steps, (n, min, max) => Karras(n, min, max, rho));

    /// <summary><see cref="LogSnr(int, double, double)"/> between the trained σ_min and σ_max.</summary>
    public static double[] LogSnr(NoiseSchedule schedule, int steps) => FromSchedule(schedule, steps, LogSnr);

    /// <summary>The levels σ_n of trained timestep indices (decreasing), then 0: the grid DDPM and DDIM step on.</summary>
    public static double[] FromTimesteps(NoiseSchedule schedule, IEnumerable<int> timesteps) =>
        Timesteps.Validate(timesteps, schedule.Timesteps).Select(schedule.Sigma).Append(0.0).ToArray();

    /// <summary>
    /// Checks a user-given list: positive, strictly decreasing, finite except possibly a leading +∞ (pure noise, only
    /// with zero terminal SNR); appends the final 0 when it is missing.
    /// </summary>
    public static double[] Validate(IEnumerable<double> sigmas)
    {
        var list = sigmas.ToList();
        if (list.Count > 0 && list[^1] == 0) list.RemoveAt(list.Count - 1);
        if (list.Count == 0) throw new DiffuseException("the noise-level list is empty: give at least one σ > 0.");
        for (int i = 0; i < list.Count; i++)
        {
            double sigma = list[i];
            if (double.IsNaN(sigma) || !(sigma > 0) || (double.IsPositiveInfinity(sigma) && i > 0))
                throw new DiffuseException($"noise level {sigma} is not allowed: every σ must be positive and finite (only the first may be ∞), with a single 0 at the end.");
            if (i > 0 && !(sigma < list[i - 1]))
                throw new DiffuseException($"the noise levels must decrease strictly (σ = {list[i - 1]} is followed by {sigma}).");
        }
        list.Add(0);
        return list.ToArray();
    }

    /// <summary>Whether <paramref name="sigmas"/> runs from low to high noise (its first two levels increase).</summary>
    public static bool IsIncreasing(IReadOnlyList<double> sigmas) => sigmas.Count >= 2 && sigmas[0] < sigmas[1];

    /// <summary>
    /// Checks a list of levels that runs from low to high noise, as the encoder of <see cref="Editing.Inversion"/> walks
    /// them: at least two, positive, finite and strictly increasing; nothing is appended.
    /// </summary>
    public static double[] ValidateIncreasing(IEnumerable<double> sigmas)
    {
        var list = sigmas.ToArray();
        if (list.Length < 2) throw new DiffuseException("an increasing noise-level list needs at least two levels.");
        for (int i = 0; i < list.Length; i++)
        {
            if (!(list[i] > 0) || double.IsInfinity(list[i]))
                throw new DiffuseException($"noise level {list[i]} is not allowed on the way up: every σ must be positive and finite.");
            if (i > 0 && !(list[i] > list[i - 1]))
                throw new DiffuseException($"the noise levels must increase strictly on the way up (σ = {list[i - 1]} is followed by {list[i]}).");
        }
        return list;
    }

    private static double[] FromSchedule(NoiseSchedule schedule, int steps, Func<int, double, double, double[]> spacing)
    {
        double sigmaMin = schedule.Sigma(0);
        if (!schedule.HasZeroTerminalSnr) return spacing(steps, sigmaMin, schedule.Sigma(schedule.Timesteps - 1));
        if (steps < 1) throw new DiffuseException($"the number of sampling steps must be at least 1 (got {steps}).");
        if (steps == 1) return new[] { double.PositiveInfinity, 0.0 };
        double largestFinite = schedule.Sigma(schedule.Timesteps - 2);
        return spacing(steps - 1, sigmaMin, largestFinite).Prepend(double.PositiveInfinity).ToArray();
    }

    /// <summary>Levels at fractions 0 … 1 of the way from σ_max to σ_min, with both ends exact, then 0.</summary>
    private static double[] Ramp(int steps, Func<double, double> level, double sigmaMin, double sigmaMax)
    {
        var sigmas = new double[steps + 1];
        for (int i = 0; i < steps; i++)
            sigmas[i] = i == 0 ? sigmaMax : i == steps - 1 ? sigmaMin : level((double)i / (steps - 1));
        sigmas[steps] = 0;
        return sigmas;
    }

    private static void CheckRange(int steps, double sigmaMin, double sigmaMax)
    {
        if (steps < 1) throw new DiffuseException($"the number of sampling steps must be at least 1 (got {steps}).");
        if (!(sigmaMin > 0) || !(sigmaMax > sigmaMin) || double.IsInfinity(sigmaMax))
            throw new DiffuseException($"the noise-level range needs 0 < σ_min < σ_max < ∞ (got {sigmaMin} … {sigmaMax}).");
    }
}
